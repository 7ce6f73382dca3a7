"""The `rstar-search` lm-eval model: registered, searching all requests in lock-step, graded
by the task's own metric through `lm_eval.simple_evaluate` and through `harness lm-eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from test_harness_eval import (  # noqa: F401 (fixtures)
    QUESTION,
    SCRIPTS,
    solver_model_dir,
)

from harness.lm_eval_model import RStarSearchLM, question_of
from rstar_pl.backends.scripted import Script, ScriptedBackend, ScriptedScorer
from rstar_pl.steps import build_prompt

ROOT = Path(__file__).resolve().parents[1]
TASK_DIR = ROOT / "harness" / "tasks"


class CountingBackend(ScriptedBackend):
    """The scripted policy, recording the prompts of every generate call."""

    def __init__(self, **kwargs) -> None:
        super().__init__([Script(q, s) for q, s in SCRIPTS.items()], **kwargs)
        self.batches: list[list[str]] = []

    def generate(self, prompts, **kwargs):
        self.batches.append(list(prompts))
        return super().generate(prompts, **kwargs)


def _requests(questions):
    from lm_eval.api.instance import Instance

    return [
        Instance(
            request_type="generate_until",
            doc={"question": q},
            arguments=(build_prompt(q), {"until": ["<end_of_answer>"]}),
            idx=0,
            metadata=("rstar_amc23", i, 1),
        )
        for i, q in enumerate(questions)
    ]


def test_registered_with_lm_eval_and_declared_as_entry_point():
    from lm_eval.api.registry import get_model

    assert get_model("rstar-search") is RStarSearchLM
    # registering ours does not hide lm-eval's own models (their registry fills itself only
    # when empty): the hf model still resolves in the same process
    assert get_model("hf").__name__ == "HFLM"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ((name, target),) = project["project"]["entry-points"]["lm_eval.models"].items()
    assert name == "rstar-search"
    assert EntryPoint(name, target, "lm_eval.models").load() is RStarSearchLM


def test_the_question_is_read_back_from_our_prompt():
    assert question_of(build_prompt("What is 1 + 1?")) == "What is 1 + 1?"
    assert question_of("Q: 1 + 1?\nA:") == "Q: 1 + 1?\nA:"


@pytest.mark.parametrize(
    ("search", "settings"),
    [
        ("best_of_n", dict(trajectories=4)),
        ("mcts", dict(trajectories=2, rollouts=3, samples=2)),
    ],
)
def test_all_requests_are_searched_in_lock_step(search, settings, sandbox, tmp_path):  # noqa: F811
    """Every backend call of the batch holds prompts of several problems, and the batch takes
    as many calls as its longest problem takes alone: one call per depth level for all."""
    questions = list(SCRIPTS)
    scripts = [Script(q, s) for q, s in SCRIPTS.items()]

    def run(qs, stats):
        backend = CountingBackend(p_wrong=0.3, p_error=0.0, seed=3)
        model = RStarSearchLM.from_components(
            backend,
            scorer=ScriptedScorer(scripts, margin=0.6, noise=0.0),
            sandbox=sandbox,
            stats_file=str(stats),
            search=search,
            ppm="scripted",
            seed=1,
            **settings,
        )
        return model.generate_until(_requests(qs)), backend.batches

    stats = tmp_path / "stats.jsonl"
    responses, calls = run(questions, stats)
    alone = [len(run([q], tmp_path / f"alone{i}.jsonl")[1]) for i, q in enumerate(questions)]
    assert len(calls) == max(alone)
    owners = {q for q in questions if any(p.startswith(build_prompt(q)) for p in calls[0])}
    assert owners == set(questions)
    rows = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [(r["task"], r["doc_id"]) for r in rows] == [("rstar_amc23", i) for i in range(3)]
    for response, row in zip(responses, rows):
        assert row["search"] == search and row["nodes"] > 1 and row["trees"] >= 1
        if row["answer"] is not None:
            assert response.endswith("<end_of_answer>")
            assert f"\\boxed{{{row['answer']}}}" in response
        assert row["answer"] in {a for a, _ in row["candidates"]} | {None}
    assert any(r["answer"] is not None for r in rows)
    if search == "mcts":  # 2 trees of at most 3 rollouts each (a tree whose root closes
        # stops early: every path reached a terminal), at least one rollout per tree
        assert all(r["trees"] == 2 and 2 <= r["rollouts"] <= 2 * 3 for r in rows), rows


def test_loglikelihood_is_refused_clearly(sandbox):  # noqa: F811
    model = RStarSearchLM.from_components(CountingBackend(), sandbox=sandbox)
    with pytest.raises(NotImplementedError, match="no log-likelihoods.*--model hf"):
        model.loglikelihood([])
    with pytest.raises(NotImplementedError, match="perplexity"):
        model.loglikelihood_rolling([])
    with pytest.raises(ValueError, match="unknown model argument\\(s\\) beams; allowed: "):
        RStarSearchLM(pretrained="x", beams=3)


def _data(tmp_path: Path) -> Path:
    """QUESTION twice, with references 42 and 41: the solver's \\boxed{42} scores 1/2."""
    data = tmp_path / "data"
    data.mkdir()
    problems = [{"index": i, "question": QUESTION, "answer": a} for i, a in enumerate(["42", "41"])]
    (data / "aime2024_test.json").write_text(json.dumps(problems))
    return data


def test_simple_evaluate_grades_the_search_with_the_task_metric(solver_model_dir, tmp_path):  # noqa: F811
    """The tiny model trained to solve QUESTION, searched by best-of-2 with its code run in the
    sandbox, through `lm_eval.simple_evaluate(model="rstar-search")`."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    stats = tmp_path / "stats.jsonl"
    threads = torch.get_num_threads()
    try:
        out = lm_eval.simple_evaluate(
            model="rstar-search",
            model_args={
                "pretrained": str(solver_model_dir),
                "search": "best_of_n",
                "trajectories": 2,
                "temperature": 0.0,
                "max_tokens": 64,
                "device": "cpu",
                "stats_file": str(stats),
            },
            tasks=["rstar_aime2024"],
            task_manager=TaskManager(
                include_path=str(TASK_DIR), metadata={"data_dir": str(_data(tmp_path))}
            ),
            log_samples=True,
        )
    finally:
        torch.set_num_threads(threads)
    assert out["results"]["rstar_aime2024"]["rstar_accuracy,none"] == pytest.approx(0.5)
    samples = out["samples"]["rstar_aime2024"]
    assert all("<output>42<end_of_output>" in s["resps"][0][0] for s in samples)
    rows = [json.loads(line) for line in stats.read_text().splitlines()]
    assert sorted(r["doc_id"] for r in rows) == [0, 1]
    assert all(r["answer"] == "42" and r["candidates"] == [["42", 0.0], ["42", 0.0]] for r in rows)


def test_harness_lm_eval_runs_lm_evals_cli_with_the_model(solver_model_dir, tmp_path):  # noqa: F811
    stats, out = tmp_path / "stats.jsonl", tmp_path / "lm_eval_out"
    args = [
        sys.executable,
        "-m",
        "harness.cli",
        "lm-eval",
        "--model",
        "rstar-search",
        "--model_args",
        f"pretrained={solver_model_dir},search=best_of_n,trajectories=2,"
        f"temperature=0.0,max_tokens=64,stats_file={stats}",
        "--device",
        "cpu",
        "--tasks",
        "rstar_aime2024",
        "--metadata",
        json.dumps({"data_dir": str(_data(tmp_path))}),
        "--output_path",
        str(out),
    ]
    proc = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["rstar_aime2024"]
    assert results["rstar_accuracy,none"] == pytest.approx(0.5)
    assert len(stats.read_text().splitlines()) == 2
