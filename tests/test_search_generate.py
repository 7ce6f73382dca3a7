"""`python -m rstar_pl generate`: the scripted example, its config handling,
the round-4 schedule, and resuming after a real kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rstar_pl.data.trees import load_trees
from rstar_pl.generate import CONFIG_NAME, ConfigError, main, parse_config
from rstar_pl.grading import is_equivalent
from rstar_pl.search import recompute_statistics
from rstar_pl.steps import build_prompt, parse_trajectory

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "search" / "scripted.yaml"
# A generous per-run limit, so that a loaded test machine never turns a step
# into a timeout error (which would change the tree, and the comparison).
SLOW_MACHINE = ["--sandbox", '{"timeout": 120}']


def _records(folder: Path) -> list[str]:
    """Every tree line of a folder, canonicalised, sorted."""
    lines = []
    for path in sorted(folder.glob("trees-*.jsonl")):
        lines += [json.dumps(json.loads(x), sort_keys=True) for x in path.read_text().splitlines()]
    return sorted(lines)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "trees"
    assert (
        main(["--config", str(CONFIG), "--out_dir", str(out), "--batch_size", "4", *SLOW_MACHINE])
        == 0
    )
    return out


def test_example_config_writes_trees_with_the_schedule(full_run):
    trees = load_trees([full_run])
    first = {t.problem_id: t for t in trees if t.attempt == 0}
    second = {t.problem_id: t for t in trees if t.attempt == 1}
    assert len(first) == 10  # the built-in set
    # attempt 1 (16 rollouts, new seed) exactly for the problems attempt 0 left unsolved
    assert set(second) == {pid for pid, t in first.items() if not t.solved()}
    assert second, "the example should leave some problem for the second attempt"
    # each tree spends its budget unless it ran out of unknown outcomes (closed root)
    for pid, tree in second.items():
        assert len(tree.rollouts) in (16, *([] if not tree.closed[0] else range(1, 16)))
        assert tree.seed != first[pid].seed
    assert all(len(t.rollouts) == 8 or t.closed[0] for t in first.values())
    # the config used is saved beside the trees and parses back to the same settings
    saved = yaml.safe_load((full_run / CONFIG_NAME).read_text())
    assert saved["schedule"] == [8, 16] and saved["search"]["n"] == 4
    assert saved["out_dir"] == str(full_run)


def test_every_q_in_the_files_recomputes_from_rollouts(full_run):
    for tree in load_trees([full_run]):
        visits, value_sum = recompute_statistics(tree)
        assert visits == tree.visits
        assert value_sum == pytest.approx(tree.value_sum)
        assert sum(1 for _ in tree.rollouts) == tree.visits[0]


def test_correct_terminals_really_are_correct(full_run):
    for tree in load_trees([full_run]):
        for path, reward in tree.rollouts:
            end = path[-1]
            steps = parse_trajectory(tree.response(end))
            if reward == 1.0:
                assert steps[-1].kind == "answer"
                assert is_equivalent(steps[-1].answer, tree.reference)
            assert tree.context(end).startswith(build_prompt(tree.question))


def test_extract_after_generate(full_run, tmp_path):
    from rstar_pl.extract import main as extract_main

    assert extract_main(["--trees", str(full_run), "--out", str(tmp_path)]) == 0
    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    difficulty = [json.loads(x) for x in (tmp_path / "difficulty.jsonl").read_text().splitlines()]
    solved = {t.problem_id for t in load_trees([full_run]) if t.solved()}
    assert {r["problem_id"] for r in sft} == solved
    assert {d["problem_id"] for d in difficulty if d["correct"]} == solved
    references = {t.problem_id: t.reference for t in load_trees([full_run])}
    for record in sft:
        answer = parse_trajectory(record["response"])[-1].answer
        assert is_equivalent(answer, references[record["problem_id"]])


def test_sft_records_run_and_print_exactly_their_output(full_run, tmp_path):
    """Every SFT response, parsed and joined, runs in the sandbox: each program
    (the code since the previous output block) prints exactly its <output>."""
    from rstar_pl.extract import main as extract_main
    from rstar_pl.sandbox import Sandbox
    from rstar_pl.steps import join_code, program_output

    assert extract_main(["--trees", str(full_run), "--out", str(tmp_path)]) == 0
    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert sft
    programs, outputs = [], []
    for record in sft:
        steps = parse_trajectory(record["response"])
        for k, step in enumerate(steps):
            if step.kind == "code_end":
                programs.append(join_code(steps[: k + 1]))
                outputs.append(step.output)
    with Sandbox(timeout=120) as box:
        results = box.run_many(programs)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert [program_output(r) for r in results] == outputs


def test_round1_width_report_shows_deep_pairs_and_answered_rollouts(tmp_path, capsys):
    """The scripted config at round-1 width (n = 12) and 8 rollouts."""
    from rstar_pl.extract import main as extract_main

    out = tmp_path / "trees"
    assert (
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(out),
                "--search.n",
                "12",
                "--schedule",
                "[8]",
                *SLOW_MACHINE,
            ]
        )
        == 0
    )
    assert extract_main(["--trees", str(out), "--out", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "data" / "report.json").read_text())
    assert "step pairs by depth" in printed and "rollouts ending in" in printed
    assert any(int(depth) >= 2 and n for depth, n in report["step_pairs_by_depth"].items())
    endings = report["rollout_endings"]
    assert endings["error"] == 0 and endings["answer"] > report["rollouts"] / 2
    assert report["rollouts"] <= 80 and report["problems"] == 10


def test_rerun_in_the_same_folder_adds_nothing(full_run, capsys):
    before = _records(full_run)
    assert (
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(full_run),
                "--batch_size",
                "4",
                *SLOW_MACHINE,
            ]
        )
        == 0
    )
    assert "0 new trees" in capsys.readouterr().out
    assert _records(full_run) == before


def test_killed_generation_resumes_to_the_same_trees(full_run, tmp_path):
    out = tmp_path / "trees"
    cmd = [
        sys.executable,
        "-m",
        "rstar_pl",
        "generate",
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        "--batch_size",
        "1",
        *SLOW_MACHINE,
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    wrote = 0
    try:
        for line in proc.stderr:  # the generator logs each tree as it is written
            if line.startswith("wrote tree"):
                wrote += 1
                if wrote == 3:
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.kill()
        proc.wait()
    partial = _records(out)
    expected = _records(full_run)
    assert wrote == 3 and 3 <= len(partial) < len(expected), (wrote, len(partial), len(expected))
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = _records(out)
    assert len(resumed) == len(expected)  # nothing duplicated, nothing missing
    different = [json.loads(r)["problem_id"] for r in resumed if r not in expected]
    assert not different, f"trees that differ from the uninterrupted run: {different}"


def test_different_run_seed_gives_different_trees(tmp_path):
    out = tmp_path / "seeded"
    assert (
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(out),
                "--seed",
                "1",
                "--problems.limit",
                "3",
                "--schedule",
                "[4]",
            ]
        )
        == 0
    )
    other = tmp_path / "seeded0"
    assert (
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(other),
                "--seed",
                "0",
                "--problems.limit",
                "3",
                "--schedule",
                "[4]",
            ]
        )
        == 0
    )
    assert _records(out) != _records(other)


def test_config_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text() + "search_typo: 3\n")
    with pytest.raises(ConfigError, match="search_typo"):
        parse_config(["--config", str(bad)])
    nested = tmp_path / "nested.yaml"
    nested.write_text(CONFIG.read_text().replace("  c: 2.0", "  c_puct: 2.0"))
    with pytest.raises(ConfigError, match="c_puct"):
        parse_config(["--config", str(nested)])
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(CONFIG.read_text().replace("annotation: terminal", "annotation: magic"))
    with pytest.raises(ConfigError, match="annotation"):
        parse_config(["--config", str(wrong)])


def test_first_play_value_is_a_config_setting():
    import math

    assert parse_config(["--config", str(CONFIG)])[0].search.unvisited == 1.0
    for given, parsed in (("inf", math.inf), ("parent_q", "parent_q"), ("-0.5", -0.5)):
        config, dumped = parse_config(["--config", str(CONFIG), "--search.unvisited", given])
        assert config.search.unvisited == parsed
        # the saved config parses back to the same setting
        assert yaml.safe_load(dumped)["search"]["unvisited"] in (given, parsed)
    with pytest.raises(ValueError, match="search.unvisited must be 'inf', 'parent_q' or a number"):
        parse_config(["--config", str(CONFIG), "--search.unvisited", "first"])


def test_resume_with_a_different_config_is_refused(tmp_path):
    out = tmp_path / "t"
    args = [
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        "--problems.limit",
        "1",
        "--schedule",
        "[2]",
    ]
    assert main(args) == 0
    with pytest.raises(ConfigError, match="different config"):
        main([*args, "--search.n", "3"])
    with pytest.raises(ConfigError, match="different config"):
        main([*args, "--schedule", "[3, 8]"])  # attempt 0 had 2 rollouts
    # batching, the number of problems and more attempts do not change any
    # existing tree: resuming may change them
    assert main([*args, "--batch_size", "7", "--problems.limit", "2", "--schedule", "[2, 4]"]) == 0
    trees = load_trees([out])
    assert {t.problem_id for t in trees} == {"demo-00", "demo-01"}
    assert {len(t.rollouts) for t in trees if t.attempt == 1} <= {4}


def test_every_search_config_parses():
    for path in sorted((ROOT / "configs" / "search").glob("*.yaml")):
        config, _ = parse_config(["--config", str(path)])
        assert config.rollout_schedule[0] >= 1, path


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[1] / "configs" / "search").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_search_config_parses_and_names_importable_components(path):
    from rstar_pl.generate import _import, parse_config

    config, _ = parse_config(["--config", str(path)])
    assert config.rollout_schedule and all(r > 0 for r in config.rollout_schedule)
    for component, what in ((config.backend, "backend"), (config.scorer, "scorer")):
        kind = component.kind
        if kind == "ray":  # Ray replicas of the component named in args.replica
            kind = component.args["replica"]["kind"]
        if kind not in (None, "scripted"):
            assert callable(_import(kind, what))


# --- a second run, a failed start, bad input, quiet exits, progress -----------------------------


def _generate_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rstar_pl",
        "generate",
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        *extra,
    ]


def test_a_second_run_on_a_busy_out_dir_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "trees"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen(
        _generate_cmd(out, "--batch_size", "1", *SLOW_MACHINE),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in first.stderr:  # wait until it is writing trees
            if line.startswith("wrote tree"):
                break
        with pytest.raises(
            OSError,
            match=rf"out_dir {out} is being written by another run "
            rf"\(pid {first.pid}\b.*generate",
        ):
            main(["--config", str(CONFIG), "--out_dir", str(out), "--batch_size", "1"])
    finally:
        first.kill()
        first.wait()
    # Nothing was written twice: one line per (problem, attempt).
    keys = [(t.problem_id, t.attempt) for t in load_trees([out])]
    assert keys and len(keys) == len(set(keys))


def test_shards_of_one_layout_run_together_other_layouts_wait(tmp_path):
    from rstar_pl.files import exclusive_output

    out = tmp_path / "trees"
    args = [
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        "--problems.limit",
        "2",
        "--schedule",
        "[2]",
    ]
    with exclusive_output(out, "generate-00000-of-00002", what="out_dir", command="shard 0"):
        # shard 1 of 2 takes disjoint problems: it may run beside shard 0 of 2
        assert main([*args, "--shard", "1", "--num_shards", "2"]) == 0
        # one unsharded run would redo shard 0's problems
        with pytest.raises(OSError, match="being written by another run.*shard 0"):
            main(args)
    assert main(args) == 0
    keys = [(t.problem_id, t.attempt) for t in load_trees([out])]
    assert sorted(keys) == [("demo-00", 0), ("demo-01", 0)]


def test_a_failed_start_leaves_no_config_and_the_fixed_command_runs(tmp_path):
    out = tmp_path / "trees"
    args = [
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        "--problems.limit",
        "1",
        "--schedule",
        "[2]",
    ]
    with pytest.raises(ConfigError, match="backend.kind"):
        main([*args, "--backend.kind", "rstar_pl.backends.scriptd:ScriptedBackend"])
    assert not (out / CONFIG_NAME).exists()
    assert main(args) == 0
    assert (out / CONFIG_NAME).is_file() and len(load_trees([out])) == 1


def test_a_refused_resume_names_the_key_that_differs(tmp_path):
    out = tmp_path / "t"
    args = [
        "--config",
        str(CONFIG),
        "--out_dir",
        str(out),
        "--problems.limit",
        "1",
        "--schedule",
        "[2]",
    ]
    assert main(args) == 0
    with pytest.raises(ConfigError, match=r"search\.n is 3 here but 4 in .*generate_config\.yaml"):
        main([*args, "--search.n", "3"])
    with pytest.raises(
        ConfigError, match=r"schedule\[0\] \(attempt 0's rollouts\) is 3 here but 2"
    ):
        main([*args, "--schedule", "[3, 8]"])
    with pytest.raises(ConfigError, match=r"backend\.args\.p_wrong is 0\.5 here but 0\.3"):
        main([*args, "--backend.args", '{"p_wrong": 0.5, "p_error": 0.1, "seed": 0}'])


def test_unknown_backend_arguments_are_one_line_naming_them(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"backend\.args: ScriptedBackend takes no 'bogus'; "
        r"it takes .*p_wrong",
    ):
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(tmp_path / "t"),
                "--backend.args",
                '{"bogus": 1}',
            ]
        )
    assert not list((tmp_path / "t").glob("*.yaml"))


def test_a_wrong_type_keeps_the_key_and_the_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(["--config", str(CONFIG), "--batch_size", "abc"])
    message = str(err.value)
    assert "\n" not in message and "batch_size" in message and "'abc'" in message
    assert "int" in message


@pytest.mark.parametrize(
    "content, why",
    [
        (b"[]", "holds no problems"),
        (json.dumps([{"index": 1, "question": " ", "answer": "1"}]).encode(), "no usable problem"),
        (b"\xff\xfe[]", r"not UTF-8 text \(byte 0xff at byte offset 0\)"),
    ],
)
def test_degenerate_problem_files_are_refused_naming_the_file(tmp_path, content, why):
    source = tmp_path / "problems.json"
    source.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{source}.*{why}"):
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(tmp_path / "t"),
                "--problems.source",
                str(source),
            ]
        )


def test_an_unreachable_hub_dataset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(
        ValueError,
        match=r"problems\.source 'no-such-user/no-such-set': cannot "
        r"load it from the Hugging Face hub",
    ):
        main(
            [
                "--config",
                str(CONFIG),
                "--out_dir",
                str(tmp_path / "t"),
                "--problems.source",
                "no-such-user/no-such-set",
            ]
        )


def test_unwritable_output_is_one_line_from_the_command(tmp_path, capsys, monkeypatch):
    from rstar_pl.cli import main as cli_main
    from rstar_pl.files import jsonl

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main(["generate", "--config", str(CONFIG), "--out_dir", str(blocker / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"Not a directory: '{blocker / 't'}'" in err

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonl.os, "write", full_disk)
    assert (
        cli_main(
            [
                "generate",
                "--config",
                str(CONFIG),
                "--out_dir",
                str(tmp_path / "full"),
                "--problems.limit",
                "1",
                "--schedule",
                "[2]",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == "rstar-pl generate: error: [Errno 28] No space left on device"
    assert "Traceback" not in err


def test_a_quick_exit_is_quiet(full_run):
    """Resuming a finished folder (the README's example) prints the summary and nothing else."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        _generate_cmd(full_run, "--batch_size", "4", *SLOW_MACHINE),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
    assert done.stdout.startswith("generate: 0 new trees")


def test_a_terminal_sees_a_progress_bar_with_total_rate_and_eta(tmp_path, in_terminal):
    code, text = in_terminal(
        [
            "generate",
            "--config",
            str(CONFIG),
            "--out_dir",
            str(tmp_path / "t"),
            "--problems.limit",
            "3",
            "--schedule",
            "[2]",
        ]
    )
    assert code == 0
    # tqdm: done/total, elapsed<remaining, rate
    assert re.search(r"3/3 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?(tree/s|s/tree)", text), text


def test_ctrl_c_is_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "trees"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = _generate_cmd(out, "--batch_size", "1", *SLOW_MACHINE)
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("wrote tree"):
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stderr.readlines()
    assert proc.wait(timeout=120) == 130
    err = "".join(lines)
    assert "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == (
        "rstar-pl generate: interrupted; run the same command again to resume"
    )
    assert load_trees([out])  # what was finished stays
