"""Benchmark registry and loading: the rStar-format files, bad files, hub datasets.

The slices in tests/data/benchmarks/ hold the first records of each benchmark
(MATH also its record 2717, Gaokao and Omni-MATH one record without a
reference); the sizes of the full sets are checked when the full copy is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.tasks import (
    DATA_DIR_ENV,
    TASKS,
    Problem,
    TaskDataError,
    UnknownTaskError,
    get_task,
    load_problems,
    read_problem_file,
    resolve_tasks,
)

# Sizes of the standard test sets (the full copies have these many records).
EXPECTED_SIZES = {
    "gsm8k": 1319,
    "math": 5000,
    "math500": 500,
    "aime2024": 30,
    "amc23": 40,
    "olympiadbench": 675,
    "collegemath": 2818,
    "gaokao2023en": 385,
    "omni": 4428,
}


def test_registry_has_the_nine_benchmarks_of_the_paper():
    assert set(TASKS) == set(EXPECTED_SIZES)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_every_task_loads_its_slice(name, benchmarks_dir):
    problems = load_problems(name, data_dir=benchmarks_dir)
    # 3 records each; MATH adds record 2717, Gaokao and Omni-MATH one without a reference
    assert len(problems) == (4 if name in ("math", "gaokao2023en", "omni") else 3)
    assert len({p.index for p in problems}) == len(problems)
    assert all(p.question.strip() and isinstance(p.answer, str) for p in problems)
    assert sum(1 for p in problems if not p.answer) == (name in ("gaokao2023en", "omni"))


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_every_task_loads_its_full_file(name, full_data_dir):
    problems = load_problems(name, data_dir=full_data_dir / "benchmarks")
    assert len(problems) == EXPECTED_SIZES[name]
    assert len({p.index for p in problems}) == len(problems)
    assert all(p.question.strip() and isinstance(p.answer, str) for p in problems)
    # All but a handful of records (2 in Gaokao, 9 in Omni-MATH) have a reference.
    assert sum(1 for p in problems if not p.answer) <= 9


def test_list_answers_are_alternatives(benchmarks_dir):
    (problem,) = [p for p in load_problems("math", data_dir=benchmarks_dir) if p.index == 2717]
    assert problem.references == ("(10,0)", "(0,0)")


def test_aime2024_first_problem_and_answer(benchmarks_dir):
    first = load_problems("aime2024", data_dir=benchmarks_dir, limit=1)
    assert len(first) == 1
    assert first[0].index == 0
    assert first[0].question.startswith("Every morning Aya goes for a $9$-kilometer-long walk")
    assert first[0].answer == "204"


def test_data_dir_from_environment(benchmarks_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(benchmarks_dir))
    assert [p.answer for p in load_problems("gsm8k", limit=2)] == ["18", "3"]


def test_limit_keeps_file_order(benchmarks_dir):
    all_math = load_problems("math", data_dir=benchmarks_dir)
    assert load_problems("math", data_dir=benchmarks_dir, limit=3) == all_math[:3]


def test_unknown_task_suggests_close_names():
    with pytest.raises(UnknownTaskError) as err:
        get_task("math50")
    message = str(err.value)
    assert "Did you mean 'math500'" in message
    assert "Available: aime2024, amc23, collegemath" in message


def test_aliases_and_comma_lists():
    assert [s.name for s in resolve_tasks("MATH500, aime24,math500")] == ["math500", "aime2024"]


def test_missing_file_names_the_file_and_the_hub_alternative(tmp_path):
    with pytest.raises(TaskDataError) as err:
        load_problems("amc23", data_dir=tmp_path)
    assert str(tmp_path / "amc23_test.json") in str(err.value)
    assert "math-ai/amc23" in str(err.value)


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(TaskDataError, match="does not exist"):
        load_problems("amc23", data_dir=tmp_path / "nope")


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize(
    ("record", "field", "what"),
    [
        ({"index": 1, "answer": "2"}, "question", "missing"),
        ({"index": 1, "question": "q?"}, "answer", "missing"),
        ({"question": "q?", "answer": "2"}, "index", "missing"),
        ({"index": 1, "question": "", "answer": "2"}, "question", "non-empty string"),
        ({"index": 1, "question": "q?", "answer": None}, "answer", "string, a number"),
        ({"index": 1, "question": "q?", "answer": ["1", {}]}, "answer", "string, a number"),
        ({"index": [1], "question": "q?", "answer": "2"}, "index", "integer or a string"),
    ],
)
def test_malformed_record_names_file_record_and_field(tmp_path, record, field, what):
    good = {"index": 0, "question": "What is 1+1?", "answer": "2"}
    path = _write(tmp_path / "math500_test.json", [good, record])
    with pytest.raises(TaskDataError) as err:
        load_problems("math500", data_dir=tmp_path)
    message = str(err.value)
    assert str(path) in message
    assert "record 1" in message
    assert f"'{field}'" in message
    assert what in message


def test_duplicate_index_is_rejected(tmp_path):
    rec = {"index": 3, "question": "q?", "answer": "1"}
    path = _write(tmp_path / "x.json", [rec, rec])
    with pytest.raises(TaskDataError, match=r"record 1: field 'index' value 3 repeats record 0"):
        read_problem_file(path)


def test_not_a_list_and_bad_json(tmp_path):
    with pytest.raises(TaskDataError, match="expected a JSON list"):
        read_problem_file(_write(tmp_path / "a.json", {"index": 0}))
    (tmp_path / "b.json").write_text("[{")
    with pytest.raises(TaskDataError, match="b.json: not valid JSON"):
        read_problem_file(tmp_path / "b.json")


def test_jsonl_file_is_found_and_numbers_become_text(tmp_path):
    lines = [
        {"index": "p1", "question": "What is 6*7?", "answer": 42},
        {"index": "p2", "question": "Half of 1?", "answer": 0.5},
    ]
    (tmp_path / "aime2024_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    problems = load_problems("aime2024", data_dir=tmp_path)
    assert problems == [Problem("p1", "What is 6*7?", "42"), Problem("p2", "Half of 1?", "0.5")]


def test_jsonl_bad_line_is_named(tmp_path):
    (tmp_path / "aime2024_test.jsonl").write_text(
        '{"index": 0, "question": "q", "answer": "1"}\n{oops\n'
    )
    with pytest.raises(TaskDataError, match=r"aime2024_test.jsonl:2: not valid JSON"):
        load_problems("aime2024", data_dir=tmp_path)


# --- Hugging Face datasets: the real loading code, on datasets saved locally ----------------


def test_hub_gsm8k_mapping_takes_the_answer_after_hashes(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {
        "question": ["Tom has 3 apples and buys 4. How many?", "A shirt costs $1200..."],
        "answer": ["He has 3+4=<<3+4=7>>7 apples.\n#### 7", "Total...\n#### 1,200"],
    }
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "g")
    problems = load_problems("gsm8k", hub_source=str(tmp_path / "g"))
    assert [(p.index, p.answer) for p in problems] == [(0, "7"), (1, "1200")]
    assert problems[0].question == rows["question"][0]


def test_hub_math_mapping_reads_the_boxed_answer_of_the_solution(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {
        "problem": ["Simplify $\\frac{2}{4}$."],
        "solution": ["Divide: $\\frac{2}{4} = \\boxed{\\frac{1}{2}}$."],
    }
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "m")
    # Seven subject configs are concatenated; a saved folder serves every config.
    problems = load_problems("math", hub_source=str(tmp_path / "m"))
    assert len(problems) == 7
    assert {p.answer for p in problems} == {"\\frac{1}{2}"}
    assert [p.index for p in problems] == list(range(7))


def test_hub_dataset_folder_via_load_dataset_with_math500_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "MATH-500"
    folder.mkdir()
    rows = {
        "problem": ["What is $1+2$?", "What is $2^3$?"],
        "answer": ["3", "8"],
        "unique_id": ["a", "b"],
    }
    # The file layout of a hub dataset repository, loaded by datasets.load_dataset.
    datasets.Dataset.from_dict(rows).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    problems = load_problems("math500", hub_source=str(folder), limit=1)
    assert problems == [Problem(0, "What is $1+2$?", "3")]


def test_hub_missing_column_is_named(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"Problem": ["q"], "Solution": ["s"]}  # AIME 2024 has "Answer", not "Solution"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "a")
    with pytest.raises(
        TaskDataError, match=r"row 0: field 'Answer' is missing; columns: Problem, Solution"
    ):
        load_problems("aime2024", hub_source=str(tmp_path / "a"))


def test_without_data_dir_the_hub_id_is_used(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    seen = {}

    def fake_split(source, config, split):
        seen.update(source=source, config=config, split=split)
        return [{"Problem": "Find x.", "Answer": 204}]

    monkeypatch.setattr("rstar_pl.data.problems._load_split", fake_split)
    problems = load_problems("aime2024")
    assert seen == {"source": "Maxwell-Jia/AIME_2024", "config": None, "split": "train"}
    assert problems == [Problem(0, "Find x.", "204")]


def test_unreachable_hub_says_what_to_do(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(TaskDataError) as err:
        load_problems("aime2024")
    message = str(err.value)
    assert "could not load 'Maxwell-Jia/AIME_2024'" in message and "--data-dir" in message
    assert "\n" not in message


def test_a_benchmark_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "aime2024_test.json"
    path.write_bytes('[{"index": 0, "question": "caf\u00e9?", "answer": "1"}]'.encode("cp1252"))
    with pytest.raises(ValueError, match=rf"^{path}: not UTF-8 text \(byte 0xe9 at byte offset"):
        load_problems("aime2024", data_dir=tmp_path)
