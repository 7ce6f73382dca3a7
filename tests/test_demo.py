"""The README's main command end to end: `python -m rstar_pl demo` (tiny models, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "rstar_pl", "demo", "--out", str(out), "--problems", "4"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]

    # Each stage handed its files to the next.
    assert (out / "base" / "config.json").is_file()
    trees = [json.loads(line) for f in (out / "round1" / "trees").glob("*.jsonl") for line in f.open()]
    assert {t["problem_id"] for t in trees} and len({t["problem_id"] for t in trees}) == 4
    sft = (out / "round1" / "data" / "sft.jsonl").read_text().splitlines()
    pairs = (out / "round1" / "data" / "pairs.jsonl").read_text().splitlines()
    assert sft and pairs  # the scripted teacher solves some problems and fails some steps
    assert (out / "round1" / "policy" / "config.json").is_file()
    assert any((out / "round1" / "ppm").iterdir())
    assert list((out / "round1" / "logs").rglob("events.out.tfevents.*"))
    round2 = [json.loads(line) for f in (out / "round2" / "trees").glob("*.jsonl") for line in f.open()]
    assert len(round2) == 4
    # Round 2 ran with the PPM: new nodes carry its value as their prior.
    assert any(node["prior"] is not None for tree in round2 for node in tree["nodes"][1:])
    assert "round 1 (scripted teacher): solved" in first.stdout

    # A second run finds every stage done and redoes nothing that is finished.
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skip (exists" in second.stdout
    assert "0 new trees" in second.stdout + second.stderr


def test_the_demo_prints_exactly_the_commands_it_runs(tmp_path, monkeypatch, capsys):
    """Each stage's command as printed, pasted into a shell, is the command that ran."""
    import shlex

    from rstar_pl import demo

    ran: list[list[str]] = []
    monkeypatch.setattr(demo.subprocess, "run", lambda cmd, **kw: ran.append(list(cmd)))
    assert demo.main(["--out", str(tmp_path / "d"), "--data-dir", str(tmp_path / "bench")]) == 0
    printed = [line.split("$ ", 1)[1] for line in capsys.readouterr().out.splitlines()
               if line.startswith("[demo] $ ")]
    assert [c[:3] for c in ran] == [[sys.executable, "-m", "rstar_pl"]] * len(ran)
    assert printed == ["python -m rstar_pl " + shlex.join(c[3:]) for c in ran]
    assert ran[-1][3:5] == ["harness", "eval"] and "--data-dir" in ran[-1]
