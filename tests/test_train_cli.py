"""`python -m rstar_pl fit` on a round config with the tiny override: both trainings,
both exports, TensorBoard logs, saved configs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstar_pl.train import BASE_KEY, RoundConfigError, load_round_config, main, read_round_file

ROOT = Path(__file__).resolve().parents[1]
ROUND2 = str(ROOT / "configs" / "round2.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")


def _tags(log_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    tags = acc.Tags()
    return set(tags["scalars"]) | set(tags.get("tensors", []))


def test_round_trains_policy_then_ppm_from_it(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "--config",
        ROUND2,
        "--config",
        TINY,
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={ROOT / 'configs/tiny_data'}",
        "--policy.trainer.max_steps=3",
        "--ppm.trainer.max_steps=2",
        "--launch",
        "inprocess",
    ]
    assert main("fit", argv) == 0

    # Policy export: an ordinary HF folder; PPM export: backbone + value head.
    from modules.export import load_policy
    from rstar_pl.backends.ppm import PPMScorer

    model, tokenizer = load_policy(run / "policy")
    assert "<end_of_step>" in tokenizer.get_vocab()
    values = PPMScorer.from_path(run / "ppm").score(
        ["<|user|>:\nq\n<|assistant|>: <code>\nx = 1\n<end_of_step>"]
    )
    assert len(values) == 1 and -1 <= values[0] <= 1

    # The PPM stage started from this round's exported policy.
    import yaml

    ppm_stage = yaml.safe_load((run / "config" / "ppm.yaml").read_text())
    assert ppm_stage["model"]["init_args"]["model"] == str(run / "policy")

    # TensorBoard: losses, learning rate, gradient norm, pair accuracy, sample generations.
    policy_logs = run / "logs" / "policy" / "version_0"
    ppm_logs = run / "logs" / "ppm" / "version_0"
    assert {
        "train/loss",
        "val/loss",
        "lr-AdamW",
        "train/grad_norm",
        "samples/text_summary",
    } <= _tags(policy_logs)
    assert {"train/loss", "train/pair_accuracy", "train/margin", "val/pair_accuracy"} <= _tags(
        ppm_logs
    )
    # LightningCLI saved each stage's full config next to its logs.
    saved = yaml.safe_load((policy_logs / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 3 and saved["model"]["init_args"]["lr"] == 1e-3
    assert (run / "checkpoints" / "policy" / "last.ckpt").is_file()


def test_print_config_resolves_the_round(tmp_path, capsys):
    import yaml

    assert (
        main(
            "fit", ["--config", ROUND2, "--config", TINY, f"--run_dir={tmp_path}", "--print_config"]
        )
        == 0
    )
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["ppm"]["model"]["init_args"]["model"] == f"{tmp_path}/policy"
    assert config["policy"]["trainer"]["accelerator"] == "cpu"
    assert config["policy"]["trainer"]["strategy"] == "auto"
    # The round's values not overridden by tiny.yaml stay.
    assert config["policy"]["model"]["init_args"]["schedule"] == "linear"
    assert config["policy"]["data"]["init_args"]["train_files"] == ["configs/tiny_data/sft.jsonl"]


def test_round_errors_are_one_line(tmp_path):
    with pytest.raises(RoundConfigError, match="--stage 'critic'; allowed: policy, ppm"):
        main("fit", ["--config", ROUND2, "--stage", "critic"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_dir: ${missing}\npolicy: {}\n")
    with pytest.raises(RoundConfigError, match="cannot resolve"):
        load_round_config([str(bad)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_round_config([str(tmp_path / "nope.yaml")])


# --- a round file builds on the files it names under `config:` -------------------------------


def test_a_round_file_is_merged_over_the_bases_it_names(tmp_path, monkeypatch):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "grand.yaml").write_text(
        "a: grand\nb: grand\npolicy: {trainer: {max_steps: 1, devices: 1}}\n"
    )
    (tmp_path / "shared" / "base.yaml").write_text(  # its own base: beside it, not in the cwd
        "config: grand.yaml\nrun_dir: ???\nb: base\npolicy: {trainer: {max_steps: 2}}\n"
    )
    (tmp_path / "round.yaml").write_text(
        "config: shared/base.yaml\nrun_dir: r\npolicy: {trainer: {devices: 4}, x: '${run_dir}/x'}\n"
    )
    monkeypatch.chdir(tmp_path / "shared")  # paths are relative to the naming file, not the cwd

    merged = read_round_file(str(tmp_path / "round.yaml"))
    # bases first, each file's keys over them; mappings merge key by key; the base's order stays
    assert merged == {
        "a": "grand",
        "b": "base",
        "run_dir": "r",
        "policy": {"trainer": {"max_steps": 2, "devices": 4}, "x": "${run_dir}/x"},
    }
    assert list(merged) == ["a", "b", "policy", "run_dir"]
    resolved = load_round_config([str(tmp_path / "round.yaml")], {"b": "cli"})
    assert resolved["policy"]["x"] == "r/x" and resolved["b"] == "cli" and BASE_KEY not in resolved

    # a list of bases: in order, the later wins
    (tmp_path / "two.yaml").write_text(
        "config: [shared/grand.yaml, shared/base.yaml]\nrun_dir: t\n"
    )
    assert read_round_file(str(tmp_path / "two.yaml"))["policy"]["trainer"] == {
        "max_steps": 2,
        "devices": 1,
    }


def test_a_round_base_that_every_round_must_complete_does_not_run_alone(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "run_dir: ???\npolicy: {trainer: {default_root_dir: '${run_dir}'}}\n"
    )
    with pytest.raises(RoundConfigError, match=r"Missing mandatory value: run_dir"):
        load_round_config([str(tmp_path / "base.yaml")])


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"r.yaml": "config: nope.yaml\n"},
            r"^{d}/r\.yaml: config: nope\.yaml: no such file \({d}/nope\.yaml\)$",
        ),
        (
            {"r.yaml": "config: b.yaml\n", "b.yaml": "config: r.yaml\npolicy: {}\n"},
            r"^{d}/b\.yaml: config: r\.yaml: the file is already being loaded \({d}/r\.yaml -> {d}/b\.yaml\)$",
        ),
        (
            {"r.yaml": "config: r.yaml\n"},
            r"^{d}/r\.yaml: config: r\.yaml: the file is already being loaded",
        ),
        (
            {"r.yaml": "config: {a: 1}\n"},
            r"^{d}/r\.yaml: config: \{'a': 1\}; allowed: a config file or a list",
        ),
        (
            {"r.yaml": "config: []\n"},
            r"^{d}/r\.yaml: config: \[\]; allowed: a config file or a list",
        ),
    ],
)
def test_bad_bases_are_refused_in_one_line_naming_the_file(files, message, tmp_path):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    d = re.escape(str(tmp_path))
    with pytest.raises(RoundConfigError, match=message.replace("{d}", d)):
        main("fit", ["--config", str(tmp_path / "r.yaml"), "--print_config"])


# --- what fit refuses, says and leaves behind -----------------------------------------------

TINY_DATA = str(ROOT / "configs" / "tiny_data")


def _round(run, tiny_model_dir, *extra):
    return [
        "--config",
        ROUND2,
        "--config",
        TINY,
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={TINY_DATA}",
        *extra,
    ]


@pytest.mark.parametrize(
    "flag, hint",
    [("--data-dir", "--data_dir"), ("--data_dri", "--data_dir"), ("--run-dir", "--run_dir")],
)
def test_unknown_round_keys_are_refused_with_a_suggestion(flag, hint, tmp_path):
    with pytest.raises(
        RoundConfigError,
        match=rf"^{flag}: no such key in the round config "
        rf".*\(did you mean {hint}\?\)",
    ):
        main("fit", ["--config", ROUND2, "--config", TINY, flag, str(tmp_path), "--print_config"])


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "--policy.trainer.max_stepz=3",
            r"stage policy \(.*policy\.yaml\): policy\.trainer\.max_stepz: no such setting "
            r"\(did you mean trainer\.max_steps\?\)",
        ),
        (
            "--ppm.trainer.max_steps=abc",
            r"stage ppm \(.*ppm\.yaml\): ppm\.trainer\.max_steps: expected int, got 'abc'",
        ),
        (
            "--ppm.model.init_args.learning_rate=0.1",
            r"stage ppm .*: ppm\.model\.init_args\.learning_rate: modules\.PPMModule takes no such "
            r"argument; it takes model, vocab_size, lr, weight_decay",
        ),
        (
            "--policy.data.init_args.batch_size=x",
            r"stage policy .*: policy\.data\.init_args\.batch_size: expected int, got 'x'",
        ),
        (
            "--base_model=runs/no-such/model",
            r"stage policy .*: policy\.model\.init_args\.model: 'runs/no-such/model' is no folder here "
            r"and not a Hugging Face hub id",
        ),
    ],
)
def test_bad_stage_settings_are_one_line_before_any_stage_runs(
    override, message, tmp_path, tiny_model_dir
):
    run = tmp_path / "run"
    with pytest.raises(RoundConfigError, match=message) as err:
        main("fit", _round(run, tiny_model_dir, override, "--launch", "inprocess"))
    assert "\n" not in str(err.value)
    assert not (run / "logs").exists() and not (run / "policy").exists()  # nothing trained


def test_validate_before_the_policy_exists_says_what_to_run(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    with pytest.raises(
        RoundConfigError,
        match=rf"stage ppm .*: ppm\.model\.init_args\.model: "
        rf"'{run}/policy' is no folder here.*written by `fit`",
    ):
        main("validate", _round(run, tiny_model_dir, "--launch", "inprocess"))
    assert not (run / "logs").exists()


def test_help_says_how_to_run_a_round(capsys):
    assert main("fit", ["--help"]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 60
    for words in (
        "--config ROUND.yaml",
        "--stage",
        "--ckpt_path",
        "--policy.KEY VALUE",
        "configs/tiny.yaml",
        "LightningCLI",
    ):
        assert words in text, words
    assert main("fit", ["--config", ROUND2, "--config", TINY, "--help"]) == 0
    text = capsys.readouterr().out
    # the round's own variables, with their values in the files
    assert re.search(r"--run_dir VALUE +runs/tiny-round", text)
    assert re.search(r"--data_dir VALUE +configs/tiny_data", text)
    assert "--base_model VALUE" in text


def test_fit_prints_stage_banners_losses_and_where_the_models_are(tiny_model_dir, tmp_path, capfd):
    run = tmp_path / "run"
    assert (
        main(
            "fit",
            _round(
                run,
                tiny_model_dir,
                "--policy.trainer.max_steps=2",
                "--ppm.trainer.max_steps=2",
                "--launch",
                "inprocess",
            ),
        )
        == 0
    )
    out = capfd.readouterr().out
    assert re.search(rf"stage 1/2, policy \({run}/config/policy\.yaml\)", out)
    assert re.search(rf"stage 2/2, ppm \({run}/config/ppm\.yaml\)", out)
    assert re.search(r"train/loss[:=] *\d", out)  # the progress bar shows the loss
    assert (
        out.rstrip().splitlines()[-1] == f"rstar-pl fit: policy -> {run}/policy, PPM -> {run}/ppm"
    )


def _wait_for(predicate, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting after {seconds} s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_kill_9_of_fit_takes_its_stage_and_a_restart_meets_the_live_writer(
    tiny_model_dir, tmp_path
):
    from rstar_pl.files import OutputInUseError, is_locked

    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = _round(
        run, tiny_model_dir, "--policy.trainer.max_steps=1000", "--policy.trainer.max_epochs=1000"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "rstar_pl", "fit", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        holder = _wait_for(
            lambda: re.search(r"stage policy: pid (\d+)", is_locked(run / ".fit.lock") or "")
        )
        stage = int(holder[1])
        assert _alive(stage)
        # a restart while the round is training is refused, naming the live writer
        with pytest.raises(
            OutputInUseError,
            match=rf"run_dir {run} is being written by another "
            rf"run \(pid {runner.pid}, stage policy: pid {stage}",
        ):
            main("fit", [*argv, "--ckpt_path", "last"])
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        _wait_for(lambda: not _alive(stage), 30)  # the stage went with it
    finally:
        runner.kill()
        runner.wait()
    _wait_for(lambda: is_locked(run / ".fit.lock") is None, 30)


def test_a_stage_that_fails_is_one_line_from_it_and_one_from_fit(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sft.jsonl").write_text("")  # extract found nothing to learn from
    (data / "pairs.jsonl").write_text("")
    run = tmp_path / "run"
    argv = [
        "--config",
        ROUND2,
        "--config",
        TINY,
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={data}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "rstar_pl", "fit", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.rstrip().splitlines()[-2:]
    assert last[0] == (
        f"rstar-pl fit: error: data.train_files ['{data}/sft.jsonl']: no SFT "
        "records (empty); extract writes none when no problem was solved"
    )
    assert re.fullmatch(
        rf"rstar-pl fit: error: `.* -m rstar_pl fit --config {run}/config/"
        r"policy\.yaml` failed with exit status 2 \(its message is above\)",
        last[1],
    )
