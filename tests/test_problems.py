"""Problems from JSON/JSONL files, saved datasets and the built-in set, and the same
problems through generation's path and the harness's (one type, one loader)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from harness.tasks import TASKS, get_task, local_file
from harness.tasks import load_problems as harness_load
from rstar_pl.data.problems import Problem, ProblemError, ProblemsConfig, load_problems


def test_rstar_benchmark_format_loads_with_defaults(benchmarks_dir):
    files = sorted(benchmarks_dir.glob("*.json"))
    assert files, benchmarks_dir
    loaded = load_problems(ProblemsConfig(source=str(files[0]), limit=2))
    assert len(loaded.problems) == 2
    raw = json.loads(files[0].read_text())[:2]
    assert [p.question for p in loaded.problems] == [r["question"].strip() for r in raw]
    assert [p.answer for p in loaded.problems] == [str(r["answer"]).strip() for r in raw]
    assert [p.id for p in loaded.problems] == [str(r["index"]) for r in raw]


def test_jsonl_with_custom_fields_and_skipped_records_reported(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    rows = [
        {"uid": "x1", "problem": "What is 2+3?", "final": 5},
        {"uid": "x2", "problem": "What is 2+2?", "final": ""},
        {"uid": "x3", "problem": "  ", "final": 1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = ProblemsConfig(
        source=str(path), question_field="problem", answer_field="final", id_field="uid"
    )
    with caplog.at_level(logging.WARNING):
        loaded = load_problems(config)
    assert [(p.id, p.question, p.answer) for p in loaded.problems] == [("x1", "What is 2+3?", "5")]
    assert [pid for pid, _ in loaded.skipped] == ["x2", "x3"]
    assert "skipped 2 problem(s)" in caplog.text


def test_answers_extracted_from_solutions_in_a_saved_dataset(tmp_path):
    import datasets

    rows = {
        "problem": ["Compute $1+1$.", "Compute $2\\cdot 3$.", "Prove it."],
        "solution": ["We add: $1+1=\\boxed{2}$.", "So the product is $\\boxed{6}$.", "Obvious."],
    }
    folder = tmp_path / "numina"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(folder))
    config = ProblemsConfig(
        source=str(folder),
        question_field="problem",
        answer_field=None,
        solution_field="solution",
        id_field=None,
    )
    loaded = load_problems(config)
    assert [(p.id, p.answer) for p in loaded.problems] == [("0", "2"), ("1", "6")]
    assert loaded.skipped == [("2", "no usable answer in 'solution'")]
    with pytest.raises(ProblemError, match="no split 'test'"):
        load_problems(ProblemsConfig(source=str(folder), split="test", question_field="problem"))


def test_a_folder_of_data_files_goes_through_load_dataset(tmp_path):
    folder = tmp_path / "hubstyle"
    folder.mkdir()
    rows = [
        {"question": f"What is {i}+{i}?", "answer": str(2 * i), "index": f"h{i}"} for i in range(3)
    ]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_problems(ProblemsConfig(source=str(folder), split="train"))
    assert [(p.id, p.answer) for p in loaded.problems] == [("h0", "0"), ("h1", "2"), ("h2", "4")]


def test_builtin_set_carries_scripts():
    loaded = load_problems(ProblemsConfig(source="builtin:scripted_problems"))
    assert len(loaded.problems) == 10 and not loaded.skipped
    assert all(isinstance(p.meta["script"], list) for p in loaded.problems)
    with pytest.raises(ProblemError, match="available: scripted_problems"):
        load_problems(ProblemsConfig(source="builtin:nope"))


@pytest.mark.parametrize(
    "content, config, message",
    [
        (
            '[{"q": "x", "answer": 1}]',
            {},
            "record 0: field 'question' is missing; fields: q, answer",
        ),
        (
            '[{"index": 1, "question": "a", "answer": 1}, {"index": 1, "question": "b", "answer": 2}]',
            {},
            "duplicate problem id '1'",
        ),
        ('{"a": 1}', {}, "expected a JSON list"),
        ("[1, ", {}, "not valid JSON"),
        (
            '[{"question": "a", "answer": 1}]',
            {"answer_field": None},
            "set answer_field or solution_field",
        ),
    ],
)
def test_bad_problem_files_give_one_clear_error(tmp_path, content, config, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ProblemError, match=message):
        load_problems(ProblemsConfig(source=str(path), **config))


# --- one loader for generation and evaluation ---------------------------------------------


def _by_hand(record: dict) -> tuple:
    """(index, question, references) of an rStar-format record, read as the format says:
    the question stripped, a list answer giving alternatives, numbers as text."""
    answers = record["answer"] if isinstance(record["answer"], list) else [record["answer"]]
    return record["index"], record["question"].strip(), tuple(str(a).strip() for a in answers)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_benchmark_file_gives_the_same_problems_to_generation_and_the_harness(
    name, benchmarks_dir
):
    path = local_file(get_task(name), benchmarks_dir)
    records = json.loads(path.read_text())
    evaluated = harness_load(name, data_dir=benchmarks_dir)  # the harness path
    generated = load_problems(ProblemsConfig(source=str(path)))  # generate's path
    assert [(p.index, p.question, p.references) for p in evaluated] == list(map(_by_hand, records))
    # the same type and values; generation skips the records without a reference,
    # which evaluation keeps (they count as wrong) and nothing else
    assert all(type(p) is Problem for p in [*evaluated, *generated.problems])
    assert generated.problems == [p for p in evaluated if p.answer]
    assert [p.meta for p in generated.problems] == [p.meta for p in evaluated if p.answer]
    assert generated.skipped == [
        (str(r["index"]), "no usable answer in 'answer'") for r in records if r["answer"] == ""
    ]


def test_a_list_answer_gives_alternatives_on_both_paths(benchmarks_dir):
    path = benchmarks_dir / "MATH_test.json"
    for problems in (
        load_problems(ProblemsConfig(source=str(path))).problems,
        harness_load("math", data_dir=benchmarks_dir),
    ):
        (problem,) = [p for p in problems if p.index == 2717]
        assert (problem.answer, problem.alternatives) == ("(10,0)", ("(0,0)",))
        assert problem.id == "2717"


def test_a_registry_mapping_is_a_generate_problems_config(tmp_path):
    """A benchmark's hub mapping (here GSM8K's answer after `####`) serves `generate` too."""
    datasets = pytest.importorskip("datasets")
    rows = {
        "question": ["Ann has 2 pens and buys 3. How many?", "Sum 999 and 1."],
        "answer": ["2+3=5\n#### 5", "999+1=1,000\n#### 1,000"],
    }
    folder = tmp_path / "gsm8k"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(folder))
    config = dataclasses.replace(get_task("gsm8k").hub, source=str(folder))
    generated = load_problems(config).problems
    assert [(p.id, p.answer) for p in generated] == [("0", "5"), ("1", "1000")]
    assert generated == harness_load("gsm8k", hub_source=str(folder))


def test_strict_loading_fails_where_generation_skips(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            [
                {"index": 0, "question": "What is 1+1?", "answer": "2"},
                {"index": 1, "question": "What is 2+2?", "answer": None},
                {"index": 2, "question": "What is 3+3?", "answer": ""},
            ]
        )
    )
    lenient = load_problems(ProblemsConfig(source=str(path)))
    assert [p.id for p in lenient.problems] == ["0"]
    assert [pid for pid, _ in lenient.skipped] == ["1", "2"]
    with pytest.raises(
        ProblemError,
        match=rf"^{path}: record 1: field 'answer' must be a "
        r"string, a number or a non-empty list of them, got None$",
    ):
        load_problems(ProblemsConfig(source=str(path)), strict=True)
    path.write_text(
        json.dumps(
            [
                {"index": 0, "question": "What is 1+1?", "answer": "2"},
                {"index": 2, "question": "What is 3+3?", "answer": ""},
            ]
        )
    )
    kept = load_problems(ProblemsConfig(source=str(path)), strict=True).problems
    assert [(p.index, p.answer) for p in kept] == [(0, "2"), (2, "")]


def test_limit_zero_keeps_no_problem(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"index": 0, "question": "What is 1+1?", "answer": "2"}]))
    assert load_problems(ProblemsConfig(source=str(path), limit=0)).problems == []
