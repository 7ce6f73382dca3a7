"""lm-eval registration: the rstar_* task YAMLs load with --include_path, read our data
and score with our grading."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_harness_eval import QUESTION, solver_model_dir  # noqa: F401 (fixture)

from harness import lm_eval_utils
from harness.tasks import TASKS
from rstar_pl.steps import build_prompt

TASK_DIR = Path(__file__).resolve().parents[1] / "harness" / "tasks"


def test_every_registry_task_has_an_lm_eval_task():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    assert set(manager.all_tasks) == {f"rstar_{name}" for name in TASKS}


def test_process_results_uses_the_project_grading():
    doc = {"question": "Half of one?", "answer": "\\frac{1}{2}", "alternatives": []}
    right = "<code>\nprint(1/2)\n<end_of_code>\n<output>0.5<end_of_output>\n<answer>\\boxed{0.5}"
    # 0.5 and \frac{1}{2} differ as strings: only an equivalence check scores this 1.
    assert lm_eval_utils.process_results(doc, [right]) == {"rstar_accuracy": 1}
    assert lm_eval_utils.process_results(doc, ["<answer>\\boxed{2}"]) == {"rstar_accuracy": 0}
    assert lm_eval_utils.process_results(doc, ["no answer at all"]) == {"rstar_accuracy": 0}
    doc_with_alternatives = {"answer": "(10,0)", "alternatives": ["(0,0)"]}
    assert lm_eval_utils.process_results(doc_with_alternatives, ["\\boxed{(0,0)}"]) == {
        "rstar_accuracy": 1
    }


def test_load_dataset_reads_the_local_rstar_files(benchmarks_dir):
    dataset = lm_eval_utils.load_dataset("aime2024", data_dir=str(benchmarks_dir), version=1.0)
    test = dataset["test"]
    assert len(test) == 3  # the slice in tests/data: the first 3 of the 30 problems
    assert test[0]["answer"] == "204" and test[0]["index"] == "0"
    assert lm_eval_utils.doc_to_text(test[0]) == build_prompt(test[0]["question"])


def test_lm_eval_cli_runs_our_task_and_metric(solver_model_dir, tmp_path, monkeypatch):  # noqa: F811
    """`lm_eval --model hf ... --include_path harness/tasks --tasks rstar_aime2024 --limit 2`.

    The policy is the tiny model trained to answer QUESTION with \\boxed{42}; the local
    data has QUESTION twice, with references 42 and 41: accuracy 1/2.
    """
    from lm_eval.__main__ import cli_evaluate

    data = tmp_path / "data"
    data.mkdir()
    problems = [{"index": i, "question": QUESTION, "answer": a} for i, a in enumerate(["42", "41"])]
    (data / "aime2024_test.json").write_text(json.dumps(problems))
    out = tmp_path / "lm_eval_out"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={solver_model_dir}",
            "--device",
            "cpu",
            "--include_path",
            str(TASK_DIR),
            "--tasks",
            "rstar_aime2024",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=80",
            "--metadata",
            json.dumps({"data_dir": str(data)}),
            "--output_path",
            str(out),
            "--log_samples",
        ],
    )
    threads = torch.get_num_threads()
    try:
        cli_evaluate()
    finally:
        torch.set_num_threads(threads)
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["rstar_aime2024"]
    assert results["rstar_accuracy,none"] == pytest.approx(0.5)
    (samples_file,) = out.rglob("samples_rstar_aime2024_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [s["rstar_accuracy"] for s in sorted(samples, key=lambda s: s["doc_id"])] == [1, 0]
    assert all("\\boxed{42}" in s["filtered_resps"][0] for s in samples)
