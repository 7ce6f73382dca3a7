"""Tree files: appended line by line, torn tails repaired, finished trees found."""

from __future__ import annotations

import json

import pytest

from rstar_pl.data.trees import (
    TreeFileError,
    TreeWriter,
    finished_trees,
    load_trees,
    repair_tail,
    shard_path,
)
from rstar_pl.search.tree import Tree


def _tree(pid: str, solved: bool, attempt: int = 0) -> Tree:
    t = Tree.new(pid, f"question {pid}?", "1", "PROMPT", seed=5, attempt=attempt)
    a = t.add_child(
        0, "<answer>\\boxed{1}<end_of_answer>", "answer", terminal=True, answer="1", correct=solved
    )
    t.backup(a, 1.0 if solved else -1.0)
    return t


def test_writer_appends_one_line_per_tree_and_reader_round_trips(tmp_path):
    path = shard_path(tmp_path, 1, 4)
    assert path.name == "trees-00001-of-00004.jsonl"
    with TreeWriter(path) as w:
        w.write(_tree("a", True))
    with TreeWriter(path) as w:  # a second run appends
        w.write(_tree("b", False))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["problem_id"] for x in lines] == ["a", "b"]
    trees = load_trees([tmp_path])
    assert [t.to_record() for t in trees] == [
        _tree("a", True).to_record(),
        _tree("b", False).to_record(),
    ]
    assert finished_trees(tmp_path) == {("a", 0): True, ("b", 0): False}


def test_torn_last_line_is_ignored_by_readers_and_truncated_on_reopen(tmp_path):
    path = shard_path(tmp_path, 0, 1)
    with TreeWriter(path) as w:
        w.write(_tree("a", True))
    good_size = path.stat().st_size
    line = json.dumps(_tree("b", True).to_record())
    with open(path, "a") as fh:
        fh.write(line[: len(line) // 2])  # a crash in the middle of a line
    assert finished_trees(tmp_path) == {("a", 0): True}
    with TreeWriter(path) as w:
        assert path.stat().st_size == good_size
        w.write(_tree("b", False, attempt=1))
    assert finished_trees(tmp_path) == {("a", 0): True, ("b", 1): False}
    assert repair_tail(path) == 0


def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    path = shard_path(tmp_path, 0, 1)
    path.write_text(json.dumps(_tree("a", True).to_record()) + "\n{not json\n")
    with pytest.raises(TreeFileError, match=r"trees-00000-of-00001.jsonl:2: not valid JSON"):
        load_trees([path])


def test_missing_tree_path_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_trees([tmp_path / "nope.jsonl"])
