"""Problems from JSON/JSONL files, saved datasets and the built-in set."""

from __future__ import annotations

import json
import logging

import pytest

from rstar_pl.data.problems import ProblemError, ProblemsConfig, load_problems


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
        ('[{"q": "x", "answer": 1}]', {}, "no field 'question'"),
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
