"""`rstar_pl.files`: outputs replaced whole with the umask's permissions, one writer per
output folder (even across kill -9 and child processes), UTF-8 errors that name the file."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstar_pl.files import (
    NotUTF8Error,
    OutputInUseError,
    atomic_dir,
    atomic_file,
    exclusive_output,
    is_locked,
    read_utf8,
    replace_together,
    write_atomic,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode",
    [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)],
)
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_atomic(tmp_path / "a.json", "{}")
    with atomic_file(tmp_path / "b.jsonl") as handle:
        handle.write("x\n")
    replace_together({tmp_path / "c.jsonl": ["1\n"], tmp_path / "d.jsonl": []})
    with atomic_dir(tmp_path / "export") as folder:
        (folder / "weights").write_text("w")
    for name in ("a.json", "b.jsonl", "c.jsonl", "d.jsonl"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(tmp_path / "export") == dir_mode
    assert (tmp_path / "export" / "weights").read_text() == "w"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json",
        "b.jsonl",
        "c.jsonl",
        "d.jsonl",
        "export",
    ]


def test_a_failed_write_replaces_nothing(tmp_path):
    for name in ("sft.jsonl", "pairs.jsonl"):
        (tmp_path / name).write_text("old\n")

    def pieces():
        yield "new\n"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_together({tmp_path / "sft.jsonl": ["new\n"], tmp_path / "pairs.jsonl": pieces()})
    assert [(tmp_path / n).read_text() for n in ("sft.jsonl", "pairs.jsonl")] == ["old\n"] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "sft.jsonl"]

    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "export") as folder:
            (folder / "half").write_text("h")
            raise RuntimeError("interrupted")
    assert not (tmp_path / "export").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "sft.jsonl"]


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    with exclusive_output(tmp_path, "job", what="--out", command="job one"):
        with pytest.raises(OutputInUseError) as err:
            with exclusive_output(tmp_path, "job", what="--out"):
                pass
        assert re.fullmatch(
            rf"--out {tmp_path} is being written by another run \(pid {os.getpid()}, since "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: job one\); wait for it to finish or choose "
            r"another --out",
            str(err.value),
        ), str(err.value)
        assert is_locked(tmp_path / ".job.lock").endswith(": job one")
        # another lock of the same folder is another output
        with exclusive_output(tmp_path, "other", what="--out"):
            pass
    assert is_locked(tmp_path / ".job.lock") is None
    with exclusive_output(tmp_path, "job", what="--out"):
        pass


_HOLDER = """
import subprocess, sys, time
from rstar_pl.files import exclusive_output
with exclusive_output(sys.argv[1], "job", what="--out", command="holder") as lock:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             pass_fds=(lock.fd,))
    lock.note(f"child pid {child.pid}")
    print(child.pid, flush=True)
    time.sleep(60)
"""


def test_the_lock_goes_with_kill_9_and_stays_with_a_child_holding_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    child = int(holder.stdout.readline())
    try:
        assert f"pid {holder.pid}, child pid {child}" in is_locked(tmp_path / ".job.lock")
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # the child still holds the open lock file: the output is still being written
        with pytest.raises(OutputInUseError, match=f"child pid {child}"):
            with exclusive_output(tmp_path, "job", what="--out"):
                pass
    finally:
        os.kill(child, signal.SIGKILL)
    # once the child has died too, nobody holds it (a zombie has closed its files)
    deadline = time.monotonic() + 30
    while is_locked(tmp_path / ".job.lock") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with exclusive_output(tmp_path, "job", what="--out"):
        pass


def test_text_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"question": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(
        NotUTF8Error,
        match=rf"^{path}: not UTF-8 text \(byte 0xe9 at byte "
        r"offset 18\); save the file as UTF-8$",
    ):
        read_utf8(path)
    path.write_text('[{"question": "caf\u00e9"}]', encoding="utf-8")
    assert read_utf8(path) == '[{"question": "caf\u00e9"}]'


def test_what_the_commands_write_has_ordinary_permissions(tmp_path, umask, tiny_model_dir):
    """Model exports, training data, configs and summaries: 0755 folders and 0644 files
    under umask 022, as `mkdir` and `open` would make them."""
    from modules.export import export_policy, load_policy
    from rstar_pl.extract import main as extract_main
    from rstar_pl.files import write_json
    from rstar_pl.generate import main as generate_main
    from rstar_pl.tiny import build_tiny_model
    from rstar_pl.train import _write_yaml

    umask(0o022)
    tiny = build_tiny_model(tmp_path / "tiny")
    model, tokenizer = load_policy(tiny_model_dir)
    export = export_policy(model, tokenizer, tmp_path / "export" / "policy")
    trees = tmp_path / "trees"
    assert (
        generate_main(
            [
                "--config",
                str(ROOT / "configs/search/scripted.yaml"),
                "--out_dir",
                str(trees),
                "--problems.limit",
                "1",
                "--schedule",
                "[2]",
            ]
        )
        == 0
    )
    assert extract_main(["--trees", str(trees), "--out", str(tmp_path / "data")]) == 0
    write_json(tmp_path / "eval" / "summary.json", {"tasks": []})
    _write_yaml(tmp_path / "run" / "config" / "policy.yaml", {"trainer": {}})

    for folder in (
        tiny,
        export,
        trees,
        tmp_path / "data",
        tmp_path / "eval",
        tmp_path / "run" / "config",
    ):
        assert _mode(folder) == 0o755, folder
        for path in folder.iterdir():  # lock files included
            assert _mode(path) == 0o644, path
