"""`harness.compare`: greedy, vote and PPM-guided MCTS at equal budget, with the scripted policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.compare import CompareSettings, compare_methods
from rstar_pl.backends.scripted import Script, ScriptedBackend, ScriptedScorer

SCRIPTS = {
    "What is six times seven?": ("x = 6 * 7", "print(x)"),
    "What is two plus three?": ("x = 2 + 3", "print(x)"),
}
ANSWERS = ["42", "5"]


def _problems(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text(
        "".join(
            json.dumps({"index": f"p{i}", "question": q, "answer": a, "level": 1}) + "\n"
            for i, (q, a) in enumerate(zip(SCRIPTS, ANSWERS, strict=True))
        )
    )
    return path


def _compare(tmp_path: Path, **settings):
    scripts = [Script(q, s) for q, s in SCRIPTS.items()]
    backend = ScriptedBackend(scripts, p_wrong=0.3, p_error=0.0, seed=1)
    scorer = ScriptedScorer(scripts, margin=0.6, noise=0.0)
    return compare_methods(
        "scripted",
        "scripted",
        str(_problems(tmp_path)),
        str(tmp_path / "out"),
        CompareSettings(**settings),
        backend=backend,
        scorer=scorer,
    )


def _mcts(tmp_path: Path) -> tuple[dict, list[dict]]:
    folder = tmp_path / "out" / "mcts" / "heldout"
    config = json.loads((folder / "config.json").read_text())
    records = [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]
    return config, records


def test_mcts_runs_share_the_trajectory_budget_and_vote(tmp_path):
    results = _compare(
        tmp_path, trajectories=4, mcts_runs=2, samples=2, max_tokens=32, max_depth=4, batch_size=2
    )
    assert set(results) == {"greedy", "vote", "mcts"}
    config, records = _mcts(tmp_path)
    # 4 trajectories = 2 independent trees of 2 rollouts each
    assert (config["trajectories"], config["rollouts"]) == (2, 2)
    for record in records:
        assert 1 <= len(record["candidates"]) <= 2  # one best trajectory per tree
    vote = json.loads((tmp_path / "out" / "vote" / "heldout" / "config.json").read_text())
    assert vote["trajectories"] == 4  # the vote samples the same 4 trajectories


def test_one_run_gets_every_rollout(tmp_path):
    _compare(tmp_path, trajectories=4, samples=2, max_tokens=32, max_depth=4)
    config, records = _mcts(tmp_path)
    assert (config["trajectories"], config["rollouts"]) == (1, 4)
    assert all(len(r["candidates"]) <= 1 for r in records)


def test_runs_that_do_not_divide_the_budget_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"mcts_runs must divide trajectories \(8\).*got 3"):
        _compare(tmp_path, trajectories=8, mcts_runs=3)
