"""`harness scaling`: the selection rules, hand-worked curves, and the command on a scripted policy.

Hand-worked pool (two problems, K = 3 candidates; group, right or wrong, score):

    problem 0:  c0 g0 right 0.2   c1 g0 right 0.1   c2 g1 wrong 0.9
    problem 1:  c0 g0 wrong -0.2  c1 no answer      c2 g1 right -0.9

k = 3 (every subset is the whole pool): pass@3 both right = 1; majority vote p0 g0 (2 votes),
p1 tie 1-1 broken by the best score, g0 (-0.2), wrong: 1/2; best-of-3 p0 g1 (0.9) wrong, p1 g0
wrong: 0; weighted vote p0 g0 0.6 + 0.55 = 1.15 over g1 0.95, p1 g0 0.4 over g1 0.05: 1/2.

k = 1: every method takes the one candidate: p0 2/3, p1 1/3 (the no-answer one is wrong): 1/2.

k = 2, the three subsets {c0,c1}, {c0,c2}, {c1,c2} of each problem, equally likely:
pass@2 p0 1, p1 2/3 (the subsets holding c2): 5/6. best-of-2 p0 right only for {c0,c1}: 1/3;
p1 right only for {c1,c2} (c0 outscores c2 when both are in): 1/3; mean 1/3. Majority vote p0
{c0,c1} right, the two 1-1 ties go to g1 (0.9): 1/3; p1 only {c1,c2}: 1/3; mean 1/3. Weighted
vote p0 {c0,c1} right, 0.6 or 0.55 against 0.95 wrong: 1/3; p1 only {c1,c2}: 1/3; mean 1/3.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from test_harness_eval import SCRIPTS, _task_dir

from harness.curves import METHODS, Pool, k_values, pick, scaling_curve
from harness.evaluate import EvalConfigError
from harness.scaling import ScalingConfig, run_scaling
from rstar_pl.backends.scripted import Script, ScriptedBackend, ScriptedScorer
from rstar_pl.search import majority_vote
from rstar_pl.search.aggregate import aggregate


def _hand_pool() -> Pool:
    return Pool.from_lists(
        groups=[[0, 0, 1], [0, -1, 1]],
        scores=[[0.2, 0.1, 0.9], [-0.2, -1.0, -0.9]],
        correct_groups=[[True, False], [False, True]],
    )


def test_k_values_double_up_to_the_maximum():
    assert k_values(64) == [1, 2, 4, 8, 16, 32, 64]
    assert k_values(6) == [1, 2, 4, 6]
    assert k_values(1) == [1]


def test_aggregations_by_hand():
    values = [0.5, -0.5, 0.0]
    assert aggregate(values, "last") == 0.0
    assert aggregate(values, "min") == -0.5
    assert aggregate(values, "mean") == pytest.approx(0.0)
    # (0.75 * 0.25 * 0.5) * 2 - 1 = -0.8125
    assert aggregate(values, "prod") == pytest.approx(-0.8125)
    with pytest.raises(ValueError, match="allowed: last, min, mean, prod"):
        aggregate(values, "max")


def test_whole_pool_picks_by_hand():
    pool, full = _hand_pool(), np.array([[0, 1, 2], [0, 1, 2]])
    got = {m: pick(pool, full, m).tolist() for m in METHODS}
    assert got == {
        "pass@k": [True, True],
        "majority vote": [True, False],
        "PPM best-of-k": [False, False],
        "PPM-weighted vote": [True, False],
    }


def test_curves_by_hand():
    curves = scaling_curve(_hand_pool(), [1, 2, 3], resamples=3000, seed=1)
    expected = {
        "pass@k": [1 / 2, 5 / 6, 1],
        "majority vote": [1 / 2, 1 / 3, 1 / 2],
        "PPM best-of-k": [1 / 2, 1 / 3, 0],
        "PPM-weighted vote": [1 / 2, 1 / 3, 1 / 2],
    }
    for method, values in expected.items():
        got = [p["accuracy"] for p in curves[method]]
        assert got == pytest.approx(values, abs=0.02), method
        assert all(p["low"] <= p["accuracy"] + 1e-9 <= p["high"] + 2e-9 for p in curves[method]), (
            method
        )
    # at k = K only the problems vary: pass@3 is 1 on every resample
    assert (curves["pass@k"][2]["low"], curves["pass@k"][2]["high"]) == (1.0, 1.0)


def test_array_votes_are_majority_vote():
    """On random pools, every pick equals `rstar_pl.search.majority_vote` on the same
    candidates (answers "g<id>", identity as equivalence)."""
    rng = random.Random(0)
    for _ in range(40):
        problems, size, k = 5, 8, rng.choice([1, 3, 5, 8])
        groups = [[rng.choice([-1, 0, 1, 2, 3]) for _ in range(size)] for _ in range(problems)]
        scores = [[rng.uniform(-1, 1) for _ in range(size)] for _ in range(problems)]
        right = [[rng.random() < 0.5 for _ in range(4)] for _ in range(problems)]
        pool = Pool.from_lists(groups, scores, right)
        subset = np.array([rng.sample(range(size), k) for _ in range(problems)])
        for weighted, method in ((False, "majority vote"), (True, "PPM-weighted vote")):
            got = pick(pool, subset, method)
            for p in range(problems):
                answers = [f"g{groups[p][i]}" if groups[p][i] >= 0 else None for i in subset[p]]
                voted = majority_vote(
                    answers,
                    [scores[p][i] for i in subset[p]],
                    weighted=weighted,
                    equivalent=lambda a, b: a == b,
                )
                assert got[p] == (voted is not None and right[p][int(voted[1:])])


def test_command_on_a_scripted_policy(tmp_path, sandbox):  # noqa: F811
    """The scripted policy and PPM (`ScriptedScorer`: +0.6 for a trajectory whose steps are all
    right, -0.6 otherwise) on three problems, K = 4: pass@k cannot fall as k grows, the PPM's
    pick is never worse than a single sample, every candidate's step scores are there, and a
    second run reuses the pools without calling the policy."""
    scripts = [Script(q, st) for q, st in SCRIPTS.items()]
    backend = ScriptedBackend(scripts, p_wrong=0.4, p_error=0.0, seed=5)
    scorer = ScriptedScorer(scripts, margin=0.6, noise=0.0)
    config = ScalingConfig(
        checkpoint="scripted",
        ppm="scripted",
        tasks=["amc23"],
        data_dir=str(_task_dir(tmp_path)),
        out=str(tmp_path / "out"),
        max_trajectories=4,
        resamples=50,
        batch_size=3,
        progress=False,
        mcts=True,
        rollouts=2,
        samples=2,
    )
    results = run_scaling(config, backend=backend, sandbox=sandbox, scorer=scorer)
    curves = results["amc23"]["curves"]
    assert list(curves) == [*METHODS, "PPM-guided MCTS"]
    assert [p["k"] for p in curves["pass@k"]] == [1, 2, 4]
    passes = [p["accuracy"] for p in curves["pass@k"]]
    assert passes == sorted(passes)
    best = [p["accuracy"] for p in curves["PPM best-of-k"]]
    assert best[-1] >= best[0] - 1e-9
    # the reference of the third problem is wrong on purpose: at most 2 of 3 can be right
    assert max(p["accuracy"] for c in curves.values() for p in c) <= 2 / 3 + 1e-9
    rows = [
        json.loads(line)
        for line in (tmp_path / "out" / "amc23" / "pool.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 3 and all(len(r["candidates"]) == 4 for r in rows)
    for row in rows:
        for c in row["candidates"]:
            if c["answer"] is not None:
                assert len(c["steps"]) >= 2 and set(c["steps"]) <= {0.6, -0.6}
                assert c["response"].endswith("<end_of_answer>")
    for name in ("scaling.png", "scaling.json", "scaling.md", "config.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert (tmp_path / "out" / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    class NoPolicy:
        def generate(self, *args, **kwargs):
            raise AssertionError("the pools are on disk; no sampling needed")

    again = run_scaling(
        ScalingConfig(**{**config.to_dict(), "aggregate": "min"}),
        backend=NoPolicy(),
        sandbox=sandbox,
        scorer=scorer,
    )
    assert again["amc23"]["problems"] == 3
    # pools of other sampling settings are never mixed in: refused before anything runs
    with pytest.raises(
        EvalConfigError, match=r"holds pools sampled with max_trajectories=4, not 8"
    ):
        run_scaling(
            ScalingConfig(**{**config.to_dict(), "max_trajectories": 8}),
            backend=NoPolicy(),
            sandbox=sandbox,
            scorer=scorer,
        )


def test_a_problem_file_is_a_task(tmp_path):
    from harness.scaling import task_problems

    path = tmp_path / "heldout.jsonl"
    path.write_text(
        "".join(
            json.dumps({"index": i, "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
            for i in range(3)
        )
    )
    config = ScalingConfig(checkpoint="x", ppm="y", tasks=[str(path)], limit=2)
    got = task_problems(config)
    assert list(got) == ["heldout"]
    assert [p.answer for p in got["heldout"]] == ["1", "2"]


def test_aggregate_is_a_setting_of_eval_and_scaling():
    from harness.cli import parse_eval_args, parse_scaling_args
    from harness.evaluate import EvalConfig

    given = ["--checkpoint", "x", "--tasks", "gsm8k", "--ppm", "p"]
    assert parse_eval_args([*given, "--aggregate", "min"]).aggregate == "min"
    assert parse_scaling_args([*given, "--aggregate", "prod"]).aggregate == "prod"
    with pytest.raises(
        EvalConfigError, match="--aggregate must be one of last, min, mean, prod, got 'max'"
    ):
        EvalConfig(checkpoint="x", tasks=["gsm8k"], aggregate="max")


def test_chains_that_never_left_the_root_are_missing_candidates(tmp_path, sandbox):  # noqa: F811
    """Half the samples fail: a best-of-N chain whose first step fails ends with no trajectory,
    and its place in the pool of K is a candidate without an answer (each one its own record)."""
    scripts = [Script(q, st) for q, st in SCRIPTS.items()]
    backend = ScriptedBackend(scripts, p_wrong=0.0, p_error=0.6, seed=2)
    config = ScalingConfig(
        checkpoint="scripted",
        ppm="scripted",
        tasks=["amc23"],
        data_dir=str(_task_dir(tmp_path)),
        out=str(tmp_path / "out"),
        max_trajectories=4,
        resamples=20,
        batch_size=3,
        progress=False,
    )
    run_scaling(
        config,
        backend=backend,
        sandbox=sandbox,
        scorer=ScriptedScorer(scripts, margin=0.6, noise=0.0),
    )
    rows = [
        json.loads(line)
        for line in (tmp_path / "out" / "amc23" / "pool.jsonl").read_text().splitlines()
    ]
    candidates = [c for r in rows for c in r["candidates"]]
    assert all(len(r["candidates"]) == 4 for r in rows)
    missing = [c for c in candidates if c["response"] == ""]
    assert missing and all(c["answer"] is None and c["steps"] == [] for c in missing)
