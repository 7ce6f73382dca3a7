"""Hooks that let lm-eval run the rStar benchmarks with this project's data and grading.

The task YAMLs in `harness/tasks/` (`rstar_math500`, `rstar_aime2024`, ...)
point here with `!function harness.lm_eval_utils.NAME`:

- `load_dataset` (`custom_dataset`): the task's problems from the same place
  `harness eval` reads them: a local rStar-format folder given as lm-eval
  metadata (`--metadata '{"data_dir": "DIR"}'`) or `$RSTAR_DATA_DIR`, else the
  task's Hugging Face dataset;
- `doc_to_text`: the step-format prompt (`rstar_pl.steps.build_prompt`);
- `process_results`: `rstar_accuracy`, 1 when the extracted answer is
  equivalent to the reference by `rstar_pl.grading`, the same test as the
  harness metric.

lm-eval generates each solution in one call up to `<end_of_answer>`, so the
policy writes its own `<output>` block: no code is executed. `harness eval`
runs the code and inserts the real output; use it for the paper's numbers.
"""

from __future__ import annotations

from typing import Any

from harness.tasks import get_task, load_problems
from rstar_pl.steps import build_prompt

__all__ = ["METRIC", "doc_to_text", "load_dataset", "process_results"]

#: Name of the accuracy metric in lm-eval's results.
METRIC = "rstar_accuracy"


def load_dataset(
    rstar_task: str,
    data_dir: str | None = None,
    hub_source: str | None = None,
    **_lm_eval_metadata: Any,
):
    """A `datasets.DatasetDict` with one "test" split of the task's problems.

    lm-eval calls it with the task's metadata as keyword arguments (its
    `version` and other keys are ignored).
    """
    import datasets

    problems = load_problems(get_task(rstar_task), data_dir=data_dir, hub_source=hub_source)
    rows = [
        {
            "index": str(p.index),
            "question": p.question,
            "answer": p.answer,
            "alternatives": list(p.alternatives),
        }
        for p in problems
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def doc_to_text(doc: dict[str, Any]) -> str:
    """The bare step-format prompt of a problem."""
    return build_prompt(doc["question"])


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """`{"rstar_accuracy": 1}` when the completion's answer matches the reference, else 0."""
    from rstar_pl.grading import extract_answer, is_equivalent

    predicted = extract_answer(results[0])
    references = [doc["answer"], *(doc.get("alternatives") or [])]
    correct = predicted is not None and bool(is_equivalent(predicted, references))
    return {METRIC: int(correct)}
