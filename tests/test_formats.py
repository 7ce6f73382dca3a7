"""One owner per file format: the JSONL reader and appender every file goes through (one rule
for a torn last line), the schema field of training records and predictions, and atomic
writes that leave nothing behind when they fail."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import harness.processbench as processbench
import harness.scaling as scaling
from rstar_pl.data.predictions import (
    PREDICTION_SCHEMA,
    PredictionError,
    append_predictions,
    read_predictions,
)
from rstar_pl.data.records import (
    SCHEMAS,
    RecordError,
    read_difficulty,
    read_pairs,
    read_records,
    read_sft,
    read_values,
    record_lines,
)
from rstar_pl.data.trees import TreeFileError, TreeWriter, iter_tree_records
from rstar_pl.files import (
    JSONLError,
    NotUTF8Error,
    append_jsonl,
    atomic_file,
    iter_jsonl,
    repair_tail,
    write_atomic,
    write_json,
    write_jsonl,
    write_yaml,
)
from rstar_pl.search.tree import Tree

SFT = {
    "problem_id": "p1",
    "question": "What is 2 + 2?",
    "response": "4",
    "mean_q": 0.5,
    "min_q": 0.1,
}
PAIR = {
    "problem_id": "p1",
    "prompt": "P",
    "chosen": "a",
    "rejected": "b",
    "chosen_q": 1.0,
    "rejected_q": -1.0,
    "kind": "step",
}
VALUE = {"problem_id": "p1", "prompt": "P", "completion": "c", "target": 0.25, "kind": "q"}
DIFFICULTY = {"problem_id": "p1", "difficulty": "medium", "correct": 1, "wrong": 2}
PREDICTION = {"index": 3, "question": "q", "reference": "4", "correct": True, "num_tokens": 7}


def _lines(path: Path, *records: dict, tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def _tree_record(pid: str) -> dict:
    return Tree.new(pid, f"question {pid}?", "1", "PROMPT", seed=5).to_record()


# (file name, the i-th good record, the reader as a function of the path -> how many records
#  it read, the error class it raises for a bad line)
READERS = {
    "trees": (
        "trees-00000-of-00001.jsonl",
        lambda i: _tree_record(f"t{i}"),
        lambda p: len(list(iter_tree_records([p]))),
        TreeFileError,
    ),
    "sft": (
        "sft.jsonl",
        lambda i: {**SFT, "problem_id": f"p{i}"},
        lambda p: len(read_sft(p)),
        RecordError,
    ),
    "pairs": (
        "pairs.jsonl",
        lambda i: {**PAIR, "problem_id": f"p{i}"},
        lambda p: len(read_pairs(p)),
        RecordError,
    ),
    "step_values": (
        "step_values.jsonl",
        lambda i: {**VALUE, "problem_id": f"p{i}"},
        lambda p: len(read_values(p)),
        RecordError,
    ),
    "difficulty": (
        "difficulty.jsonl",
        lambda i: {**DIFFICULTY, "problem_id": f"p{i}"},
        lambda p: len(read_difficulty(p)),
        RecordError,
    ),
    "records": (
        "pairs.jsonl",
        lambda i: {**PAIR, "problem_id": f"p{i}"},
        lambda p: len(read_records(p)),
        RecordError,
    ),
    "predictions": (
        "predictions.jsonl",
        lambda i: {**PREDICTION, "index": i},
        lambda p: len(read_predictions(p)),
        PredictionError,
    ),
    "scaling pool": (
        "pool.jsonl",
        lambda i: {"index": str(i), "reference": "1", "candidates": []},
        lambda p: len(scaling._read_pool(p)),
        JSONLError,
    ),
    "processbench scores": (
        "scores-gsm8k.jsonl",
        lambda i: {"id": f"g-{i}", "label": -1, "scores": [0.5]},
        lambda p: len(processbench._read_scores(p)),
        processbench.ProcessBenchError,
    ),
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_every_reader_skips_a_torn_last_line_and_refuses_a_bad_one_elsewhere(
    kind, tmp_path, caplog
):
    name, make, count, error = READERS[kind]
    path = tmp_path / name
    good = make(0)
    torn = json.dumps(make(1))[:-7]  # a crash in the middle of the second line
    _lines(path, good, tail=torn)
    with caplog.at_level(logging.WARNING):
        assert count(path) == 1
    assert f"{path}:2: ignoring a torn last line" in caplog.text
    # the same line anywhere else is damage, not a crash: one line naming file and line
    _lines(path, good, tail=torn + "\n" + json.dumps(make(2)) + "\n")
    with pytest.raises(error, match=rf"^{path}:2: not valid JSON \(") as err:
        count(path)
    assert "\n" not in str(err.value)
    # a last record that lacks only its newline is whole
    _lines(path, good, tail=json.dumps(make(1)))
    assert count(path) == 2


def test_the_reader_names_file_and_line_for_bytes_and_values_it_cannot_take(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n\xff\n')
    with pytest.raises(NotUTF8Error, match=rf"^{path}:3: not UTF-8 text \(byte 0xff\)"):
        list(iter_jsonl(path))
    path.write_bytes(b'{"a": 1}\n\n[1, 2]\n{"b": 2}')
    with pytest.raises(JSONLError, match=rf"^{path}:3: a line must be a JSON object, got list$"):
        list(iter_jsonl(path))
    path.write_bytes(b'{"a": 1}\n   \n{"b": 2}\n')  # blank lines are skipped, lines counted
    assert list(iter_jsonl(path)) == [({"a": 1}, f"{path}:1"), ({"b": 2}, f"{path}:3")]


def test_repair_leaves_exactly_the_records_a_read_yields(tmp_path):
    path = _lines(tmp_path / "a.jsonl", {"a": 1}, tail='{"b": 2, "c"')
    before = list(iter_jsonl(path))
    assert repair_tail(path) == len('{"b": 2, "c"')
    assert path.read_text() == '{"a": 1}\n'
    assert list(iter_jsonl(path)) == before
    # a whole last record without its newline is kept and given its newline
    path.write_text('{"a": 1}\n{"b": 2}')
    assert repair_tail(path) == 0
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert repair_tail(path) == 0  # nothing to do on a whole file
    assert repair_tail(tmp_path / "missing.jsonl") == 0


def test_every_appender_cuts_a_torn_tail_before_its_first_line(tmp_path):
    """Appending after a torn line would glue the new record to it and lose both."""
    plain = _lines(tmp_path / "pool.jsonl", {"index": "0"}, tail='{"index": "1", "cand')
    append_jsonl(plain, [{"index": "1"}])
    assert [json.loads(line)["index"] for line in plain.read_text().splitlines()] == ["0", "1"]

    predictions = _lines(tmp_path / "predictions.jsonl", PREDICTION, tail='{"index": 4, "qu')
    append_predictions(predictions, [{**PREDICTION, "index": 4}])
    assert [r["index"] for r in read_predictions(predictions)] == [3, 4]

    trees = _lines(
        tmp_path / "trees-00000-of-00001.jsonl",
        _tree_record("a"),
        tail=json.dumps(_tree_record("b"))[:40],
    )
    with TreeWriter(trees) as writer:
        writer.write(_tree_record("c"))
    assert [r["problem_id"] for r, _ in iter_tree_records([trees])] == ["a", "c"]


def test_extractor_lines_start_with_their_schema_and_read_back(tmp_path):
    records = {
        "sft": SFT,
        "pairs": PAIR,
        "step_values": VALUE,
        "outcomes": VALUE,
        "difficulty": DIFFICULTY,
    }
    assert set(records) == set(SCHEMAS)
    for name, record in records.items():
        (line,) = record_lines(name, [record])
        assert line.startswith(f'{{"schema": "{SCHEMAS[name]}", ')
        assert json.loads(line) == {"schema": SCHEMAS[name], **record}
        path = tmp_path / f"{name}.jsonl"
        path.write_text(line, encoding="utf-8")
        assert read_records(path) == [{"schema": SCHEMAS[name], **record}]
    assert read_sft(tmp_path / "sft.jsonl")[0].response == "4"
    assert read_pairs(tmp_path / "pairs.jsonl")[0].chosen == "a"
    assert read_values(tmp_path / "outcomes.jsonl")[0].target == 0.25
    assert read_difficulty(tmp_path / "difficulty.jsonl")[0]["difficulty"] == "medium"


def test_records_without_a_schema_read_as_version_1(tmp_path, data_dir):
    assert len(read_sft(_lines(tmp_path / "sft.jsonl", SFT, SFT))) == 2
    assert len(read_pairs(_lines(tmp_path / "pairs.jsonl", PAIR))) == 1
    assert len(read_values(_lines(tmp_path / "step_values.jsonl", VALUE))) == 1
    assert len(read_difficulty(_lines(tmp_path / "difficulty.jsonl", DIFFICULTY))) == 1
    # the official rStar formats have no schema field either
    assert read_sft(data_dir / "rstar_format/sft_example.json")
    assert read_pairs(data_dir / "rstar_format/ppm_pairs_example.json")


@pytest.mark.parametrize(
    "name, record, read, allowed",
    [
        ("sft", SFT, read_sft, "'rstar-sft/1'"),
        ("pairs", PAIR, read_pairs, "'rstar-pair/1'"),
        ("step_values", VALUE, read_values, "'rstar-step-value/1', 'rstar-outcome/1'"),
        ("difficulty", DIFFICULTY, read_difficulty, "'rstar-difficulty/1'"),
        ("pairs", PAIR, read_records, "'rstar-pair/1'"),
    ],
)
def test_a_record_of_an_unknown_schema_is_refused_in_one_line(
    tmp_path, name, record, read, allowed
):
    path = _lines(tmp_path / f"{name}.jsonl", record, {**record, "schema": "rstar-sft/2"})
    with pytest.raises(RecordError) as err:
        read(path)
    assert str(err.value) == (
        f"{path}:2: schema 'rstar-sft/2' is not one this version reads; "
        f"allowed: {allowed} (or no schema key, read as version 1)"
    )
    # another kind's schema is refused too: a pairs file given as SFT data
    if name == "sft":
        _lines(path, {**SFT, "schema": "rstar-pair/1"})
        with pytest.raises(RecordError, match=rf"^{path}:1: schema 'rstar-pair/1' is not one"):
            read_sft(path)


def test_predictions_carry_their_schema_and_older_files_still_load(tmp_path):
    path = tmp_path / "predictions.jsonl"
    append_predictions(path, [PREDICTION])
    (line,) = path.read_text().splitlines()
    assert list(json.loads(line)) == ["schema", *PREDICTION]
    assert json.loads(line)["schema"] == PREDICTION_SCHEMA == "rstar-prediction/1"
    # the first version wrote "schema": 1; a file without the key reads as version 1 too
    _lines(path, {"schema": 1, **PREDICTION}, {**PREDICTION, "index": 4})
    assert [r["index"] for r in read_predictions(path)] == [3, 4]
    _lines(path, PREDICTION, {"schema": "rstar-prediction/2", **PREDICTION})
    with pytest.raises(PredictionError) as err:
        read_predictions(path)
    assert str(err.value) == (
        f"{path}:2: schema 'rstar-prediction/2' is not one this version "
        "reads; allowed: 'rstar-prediction/1' (or no schema key, read as "
        "version 1)"
    )
    assert read_predictions(tmp_path / "none.jsonl") == []


@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_atomic(p, "new"),
        lambda p: write_json(p, {"new": 1}),
        lambda p: write_yaml(p, {"new": 1}),
        lambda p: write_jsonl(p, [{"new": 1}]),
    ],
    ids=["write_atomic", "write_json", "write_yaml", "write_jsonl"],
)
def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, monkeypatch, write
):
    path = tmp_path / "out.json"
    path.write_text("old")

    def disk_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError, match="Input/output error"):
        write(path)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    monkeypatch.undo()
    write(path)
    assert path.read_text() != "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_an_exception_inside_an_atomic_file_block_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(tmp_path / "new.jsonl") as handle:
            handle.write("half a line")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
