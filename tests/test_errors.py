"""Bad input and bugs are told apart: every "bad input" error is a `UserError`, which
the command lines print as one line with exit status 2, while any other exception, a
bare `ValueError` from a library included, keeps its traceback."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from rstar_pl.errors import UsageError, UserError

ROOT = Path(__file__).resolve().parents[1]

#: every error class that means "what you gave cannot be used", by module
BAD_INPUT = [
    ("rstar_pl.generate", "ConfigError"),
    ("rstar_pl.data.problems", "ProblemError"),
    ("rstar_pl.data.trees", "TreeFileError"),
    ("rstar_pl.data.extraction", "ExtractError"),
    ("rstar_pl.search.tree", "TreeRecordError"),
    ("rstar_pl.steps", "StepFormatError"),
    ("rstar_pl.backends.scripted", "ScriptError"),
    ("rstar_pl.evolve", "EvolveError"),
    ("rstar_pl.evolution.ledger", "LedgerError"),
    ("rstar_pl.train", "RoundConfigError"),
    ("rstar_pl.train", "StageConfigError"),
    ("rstar_pl.files.text", "NotUTF8Error"),
    ("rstar_pl.errors", "UsageError"),
    ("rstar_pl.data.records", "RecordError"),
    ("rstar_pl.data.predictions", "PredictionError"),
    ("rstar_pl.data.problems", "SourceUnavailableError"),
    ("rstar_pl.files.jsonl", "JSONLError"),
    ("harness.tasks", "TaskDataError"),
    ("harness.tasks", "UnknownTaskError"),
    ("harness.evaluate", "EvalConfigError"),
    ("harness.evaluate", "NotAvailableError"),
    ("harness.checkpoint", "CheckpointError"),
    ("harness.processbench", "ProcessBenchError"),
]


@pytest.mark.parametrize("module, name", BAD_INPUT)
def test_every_bad_input_error_is_a_user_error_and_still_a_value_error(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, UserError) and issubclass(cls, ValueError)


def _run(*argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "rstar_pl", *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _run("extract", "--trees", str(empty), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert (
        done.stderr == f"rstar-pl extract: error: --trees {empty}: no trees-*.jsonl files there\n"
    )
    done = _run(
        "extract", "--trees", str(empty), "--out", str(tmp_path / "out"), "--min-margn", "1"
    )
    assert done.returncode == 2
    assert done.stderr == (
        "rstar-pl extract: error: unknown option(s) --min-margn (did you mean "
        "--min_margin?); see rstar-pl extract --help\n"
    )


BUG = """
import sys
import rstar_pl.extract


def read_trees(paths):
    raise ValueError("a library's own ValueError, not bad input")


rstar_pl.extract.read_trees = read_trees
from rstar_pl.cli import main

sys.exit(main(["extract", "--trees", ".", "--out", "out"]))
"""


def test_a_value_error_from_a_bug_keeps_its_traceback():
    done = _run(code=BUG)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().endswith("ValueError: a library's own ValueError, not bad input")
    assert "rstar-pl extract: error" not in done.stderr


def test_harness_prints_user_errors_in_one_line_and_lets_bugs_through(monkeypatch, capsys):
    import harness.evaluate
    from harness.cli import main

    argv = ["eval", "--checkpoint", "x", "--tasks", "gsm8k"]

    def bad_input(config):
        raise harness.evaluate.EvalConfigError("--limit must be >= 0, got -1")

    monkeypatch.setattr(harness.evaluate, "evaluate", bad_input)
    assert main(argv) == 2
    assert capsys.readouterr().err == "harness eval: error: --limit must be >= 0, got -1\n"

    def bug(config):
        raise ValueError("shapes do not match")  # as torch would

    monkeypatch.setattr(harness.evaluate, "evaluate", bug)
    with pytest.raises(ValueError, match="shapes do not match"):
        main(argv)
    assert capsys.readouterr().err == ""


def test_a_refused_command_line_is_a_usage_error(capsys):
    from harness.cli import main

    assert main(["eval", "--checkpoint", "x", "--tasks", "gsm8k", "--limit", "many"]) == 2
    assert capsys.readouterr().err == (
        "harness eval: error: limit: expected int or null, got 'many'; see harness eval --help\n"
    )
    from rstar_pl.tiny import main as tiny_main

    with pytest.raises(UsageError, match="^the following arguments are required: --out; see "):
        tiny_main([])
