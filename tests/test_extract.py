"""Extraction on small hand-built trees gives exactly the expected records."""

from __future__ import annotations

import json
import re

import pytest

from rstar_pl.data.extraction import (
    ExtractConfig,
    bounded_edit_distance,
    extract,
    extract_with_report,
)
from rstar_pl.data.trees import TreeWriter
from rstar_pl.extract import main
from rstar_pl.search.tree import Tree
from rstar_pl.steps import build_prompt, format_output

S1 = "<code>\n# Step 1: set a\na = 1\n<end_of_step>"
S2 = "<code>\n# Step 1: a is the sum of the two numbers, written as a product\na = 2 * 2\n<end_of_step>"
C1 = "\n# print\nprint(a + 1)\n<end_of_code>"
C2 = "\n# print\nprint(a + 2)\n<end_of_code>"
C3 = "\n# print\nprint(a + 1)\n<end_of_code>"


def _answer(value: str) -> str:
    return f"<answer>The answer is \\boxed{{{value}}}.<end_of_answer>"


def mixed_tree() -> Tree:
    """P1, reference 2:

        0 root
        +- 1 S1 (a = 1)
        |  +- 3 C1 -> output 2 -- 5 answer 2 (correct)
        |  +- 4 C2 -> output 3 -- 6 answer 3 (wrong)
        +- 2 S2 (a = 2 * 2)
           +- 7 C3 -> output 5 -- 8 answer 5 (wrong)

    rollouts: 5 (+1), 8 (-1), 6 (-1), 5 (+1)
    visits/value: 1: 3/1 (Q 1/3), 2: 1/-1, 3: 2/2 (Q 1), 4: 1/-1, 5: 2/2, 6..8: 1/-1
    """
    t = Tree.new("P1", "What is 1 + 1?", "2", build_prompt("What is 1 + 1?"), seed=1)
    s1 = t.add_child(0, S1, "step")
    s2 = t.add_child(0, S2, "step")
    c1 = t.add_child(s1, C1, "code_end", output="2")
    c2 = t.add_child(s1, C2, "code_end", output="3")
    a1 = t.add_child(c1, _answer("2"), "answer", terminal=True, answer="2", correct=True)
    a2 = t.add_child(c2, _answer("3"), "answer", terminal=True, answer="3", correct=False)
    c3 = t.add_child(s2, C3, "code_end", output="5")
    a3 = t.add_child(c3, _answer("5"), "answer", terminal=True, answer="5", correct=False)
    assert (a1, a2, c3, a3) == (5, 6, 7, 8)
    for end in (a1, a3, a2, a1):
        t.backup(end, t.terminal_reward(end))
    return t


def easy_tree() -> Tree:
    """P2, all correct, with PPM priors (Q = (prior + rewards) / (1 + visits)):

    1 (prior 0.0)  -> 3 answer (prior 1.0):  Q 0.5, 1.0   mean 0.75  min 0.5
    2 (prior 0.5)  -> 4 answer (prior 0.0):  Q 0.75, 0.5  mean 0.625 min 0.5
    5 (prior -0.5) -> 6 answer (prior 1.0):  Q 0.25, 1.0  mean 0.625 min 0.25
    """
    t = Tree.new("P2", "What is 2 + 2?", "4", build_prompt("What is 2 + 2?"), seed=2)
    n1 = t.add_child(0, "<code>\nx = 4\n<end_of_step>", "step", prior=0.0)
    n2 = t.add_child(0, "<code>\nx = 2 + 2\n<end_of_step>", "step", prior=0.5)
    n3 = t.add_child(n1, _answer("4"), "answer", terminal=True, answer="4", correct=True, prior=1.0)
    n4 = t.add_child(
        n2, _answer("4.0"), "answer", terminal=True, answer="4.0", correct=True, prior=0.0
    )
    n5 = t.add_child(0, "<code>\nx = 2 * 2\n<end_of_step>", "step", prior=-0.5)
    n6 = t.add_child(
        n5, _answer("04"), "answer", terminal=True, answer="04", correct=True, prior=1.0
    )
    for end in (n3, n4, n6):
        t.backup(end, 1.0)
    return t


def hard_tree() -> Tree:
    t = Tree.new("P3", "What is 3 + 3?", "6", build_prompt("What is 3 + 3?"), seed=3)
    s = t.add_child(0, "<code>\nx = 5\n<end_of_step>", "step", error=None)
    a = t.add_child(s, _answer("5"), "answer", terminal=True, answer="5", correct=False)
    t.backup(a, -1.0)
    return t


def test_sft_records_are_the_top_two_correct_by_mean_then_min_q():
    data = extract([mixed_tree(), easy_tree(), hard_tree()])
    sft = data["sft"]
    assert [r["problem_id"] for r in sft] == ["P1", "P2", "P2"]
    p1 = sft[0]
    assert p1["question"] == "What is 1 + 1?"
    assert p1["response"] == S1 + C1 + format_output("2") + _answer("2")
    assert p1["mean_q"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert p1["min_q"] == pytest.approx(1 / 3)
    # P2: 0.75 first; 0.625 tie broken by the higher minimum (0.5 over 0.25)
    assert [(r["mean_q"], r["min_q"]) for r in sft[1:]] == [(0.75, 0.5), (0.625, 0.5)]
    assert sft[2]["response"] == "<code>\nx = 2 + 2\n<end_of_step>" + _answer("4.0")


def test_pairs_per_step_and_final_exactly():
    pairs = extract([mixed_tree(), easy_tree(), hard_tree()])["pairs"]
    prompt = build_prompt("What is 1 + 1?")
    expected = [
        # at the root: S1 reached a correct answer, S2 only wrong ones
        ("step", prompt, S1, S2, 1 / 3, -1.0),
        # after S1: C1 (correct) vs C2 (wrong), each with its output block
        ("step", prompt + S1, C1 + format_output("2"), C2 + format_output("3"), 1.0, -1.0),
        # final: the correct trajectory against the wrong ones, lowest mean Q first
        (
            "final",
            prompt,
            S1 + C1 + format_output("2") + _answer("2"),
            S2 + C3 + format_output("5") + _answer("5"),
            7 / 9,
            -1.0,
        ),
        (
            "final",
            prompt,
            S1 + C1 + format_output("2") + _answer("2"),
            S1 + C2 + format_output("3") + _answer("3"),
            7 / 9,
            -5 / 9,
        ),
    ]
    got = [
        (p["kind"], p["prompt"], p["chosen"], p["rejected"], p["chosen_q"], p["rejected_q"])
        for p in pairs
    ]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g[:4] == e[:4]
        assert g[4:] == pytest.approx(e[4:])
    assert {p["problem_id"] for p in pairs} == {"P1"}  # all-correct / all-wrong give none
    # prompt + chosen is a partial trajectory, i.e. what the PPM scores
    assert pairs[1]["prompt"] + pairs[1]["chosen"] == mixed_tree().context(3)


def test_pair_filters_margin_and_edit_distance():
    # margins: root pair 4/3, step pair 2, final pairs 16/9 and 4/3
    pairs = extract([mixed_tree()], ExtractConfig(min_margin=1.5))["pairs"]
    assert [(p["kind"], round(p["chosen_q"] - p["rejected_q"], 3)) for p in pairs] == [
        ("step", 2.0),
        ("final", 1.778),
    ]
    # C1 + output vs C2 + output differ in two characters: dropped by a filter of 3
    pairs = extract([mixed_tree()], ExtractConfig(min_edit=3))["pairs"]
    assert all(p["chosen"] != C1 + format_output("2") for p in pairs)
    assert len(pairs) == 3


def test_difficulty_counts():
    rows = extract([mixed_tree(), easy_tree(), hard_tree()])["difficulty"]
    assert rows == [
        {"problem_id": "P1", "difficulty": "medium", "correct": 1, "wrong": 2},
        {"problem_id": "P2", "difficulty": "easy", "correct": 3, "wrong": 0},
        {"problem_id": "P3", "difficulty": "hard", "correct": 0, "wrong": 1},
    ]


def test_trees_of_one_problem_are_pooled():
    # a second, unsolved tree of P3 plus a solved one: P3 becomes medium
    solved = Tree.new(
        "P3", "What is 3 + 3?", "6", build_prompt("What is 3 + 3?"), seed=9, attempt=1
    )
    a = solved.add_child(0, _answer("6"), "answer", terminal=True, answer="6", correct=True)
    solved.backup(a, 1.0)
    data = extract([hard_tree(), solved])
    assert data["difficulty"] == [
        {"problem_id": "P3", "difficulty": "medium", "correct": 1, "wrong": 1}
    ]
    assert [r["response"] for r in data["sft"]] == [_answer("6")]
    assert [p["kind"] for p in data["pairs"]] == ["final"]


@pytest.mark.parametrize(
    "a, b, limit, expected",
    [
        ("kitten", "sitting", 10, 3),
        ("kitten", "sitting", 3, 3),
        ("kitten", "sitting", 2, 2),
        ("", "abc", 10, 3),
        ("same", "same", 5, 0),
        ("a" * 50, "b" * 50, 20, 20),
    ],
)
def test_bounded_edit_distance(a, b, limit, expected):
    assert bounded_edit_distance(a, b, limit) == expected


def test_cli_writes_three_files(tmp_path):
    trees = tmp_path / "trees-00000-of-00001.jsonl"
    with TreeWriter(trees) as writer:
        for tree in (mixed_tree(), easy_tree(), hard_tree()):
            writer.write(tree)
    out = tmp_path / "data"
    assert (
        main(
            ["--trees", str(tmp_path), "--out", str(out), "--min-margin", "0.5", "--min-edit", "20"]
        )
        == 0
    )
    read = {
        n: [json.loads(x) for x in (out / f"{n}.jsonl").read_text().splitlines()]
        for n in ("sft", "pairs", "difficulty")
    }
    assert len(read["sft"]) == 3 and len(read["difficulty"]) == 3
    # every line starts with its schema (rstar_pl.data.records)
    assert [list(read[n][0])[0] for n in ("sft", "pairs", "difficulty")] == ["schema"] * 3
    assert {read[n][0]["schema"] for n in ("sft", "pairs", "difficulty")} == {
        "rstar-sft/1",
        "rstar-pair/1",
        "rstar-difficulty/1",
    }
    assert set(read["sft"][0]) == {
        "schema",
        "problem_id",
        "question",
        "response",
        "mean_q",
        "min_q",
    }
    assert set(read["pairs"][0]) == {
        "schema",
        "problem_id",
        "prompt",
        "chosen",
        "rejected",
        "chosen_q",
        "rejected_q",
        "kind",
    }
    report = json.loads((out / "report.json").read_text())
    assert report["problems"] == 3 and report["pairs"]["step"] == 1
    # the pointwise reward models read the value records as written
    from rstar_pl.data.records import read_values

    steps, outcomes = read_values(out / "step_values.jsonl"), read_values(out / "outcomes.jsonl")
    assert len(steps) == report["value_records"]["step_values"] > 0
    assert sorted({o.target for o in outcomes}) == [-1.0, 1.0]
    # with the reference filters only the pairs that differ by 20+ characters stay:
    # S1 vs S2 at the root, and the final pair against the S2 trajectory
    assert [(p["kind"], p["rejected_q"]) for p in read["pairs"]] == [
        ("step", -1.0),
        ("final", -1.0),
    ]


# ---- only graded answers are right or wrong ------------------------------------------

E1 = "<code>\n# Step 1: use b\na = b + 1\n<end_of_step>"
S3 = "<code>\n# Step 1: count to many\na = sum(range(10))\n<end_of_step>"


def errors_tree() -> Tree:
    """P4, reference 2: one correct answer; the other rollouts end without one.

        0 root
        +- 1 S1 -- 2 C1 (output 2) -- 3 answer 2 (correct)
        +- 4 S2: its samples all failed: 5 E1 (NameError), 4 terminal (no valid child)
        +- 6 S3 at the depth limit (terminal, no answer)

    rollouts: 3 (+1), 4 (-1), 6 (-1)
    """
    t = Tree.new("P4", "What is 1 + 1?", "2", build_prompt("What is 1 + 1?"), seed=4)
    s1 = t.add_child(0, S1, "step")
    c1 = t.add_child(s1, C1, "code_end", output="2")
    a1 = t.add_child(c1, _answer("2"), "answer", terminal=True, answer="2", correct=True)
    s2 = t.add_child(0, S2, "step")
    t.add_child(s2, E1, "step", error="NameError: name 'b' is not defined")
    t.end_without_valid_child(s2)
    s3 = t.add_child(0, S3, "step", terminal=True, correct=False)
    assert (a1, s2, s3) == (3, 4, 6)
    for end in (a1, s2, s3):
        t.backup(end, t.terminal_reward(end))
    return t


def test_a_problem_whose_every_answer_is_correct_is_easy_whatever_else_happened():
    data = extract([errors_tree()])
    assert data["difficulty"] == [
        {"problem_id": "P4", "difficulty": "easy", "correct": 1, "wrong": 0}
    ]
    assert data["pairs"] == []  # no wrong answer: nothing to pair against
    assert [r["response"] for r in data["sft"]] == [S1 + C1 + format_output("2") + _answer("2")]


def mixed_with_dead_end() -> Tree:
    """P5, reference 2:

        0 root
        +- 1 S1 -- 2 C1 (output 2) -- 3 answer 2 (correct)
        +- 4 S2 -- 5 C3 (output 5) -- 6 answer 5 (wrong)
        +- 7 S3: no valid child (8 E1 failed)
        +- 9 E1 at the root: failed (error child)

    rollouts: 3 (+1), 6 (-1), 7 (-1). Q: S1 1, S2 -1, S3 -1.
    """
    t = Tree.new("P5", "What is 1 + 1?", "2", build_prompt("What is 1 + 1?"), seed=5)
    s1 = t.add_child(0, S1, "step")
    c1 = t.add_child(s1, C1, "code_end", output="2")
    a1 = t.add_child(c1, _answer("2"), "answer", terminal=True, answer="2", correct=True)
    s2 = t.add_child(0, S2, "step")
    c3 = t.add_child(s2, C3, "code_end", output="5")
    a3 = t.add_child(c3, _answer("5"), "answer", terminal=True, answer="5", correct=False)
    s3 = t.add_child(0, S3, "step")
    t.add_child(s3, E1, "step", error="NameError: name 'b' is not defined")
    t.end_without_valid_child(s3)
    t.add_child(0, E1, "step", error="NameError: name 'b' is not defined")
    for end in (a1, a3, s3):
        t.backup(end, t.terminal_reward(end))
    return t


def test_negatives_and_final_pairs_are_wrong_answers_only():
    pairs = extract([mixed_with_dead_end()])["pairs"]
    prompt = build_prompt("What is 1 + 1?")
    right = S1 + C1 + format_output("2") + _answer("2")
    wrong = S2 + C3 + format_output("5") + _answer("5")
    got = [
        (p["kind"], p["prompt"], p["chosen"], p["rejected"], p["chosen_q"], p["rejected_q"])
        for p in pairs
    ]
    # S3 (Q -1, reached no answer) is neither a step negative nor a final one
    assert got == [
        ("step", prompt, S1, S2, 1.0, -1.0),
        ("final", prompt, right, wrong, 1.0, -1.0),
    ]
    assert extract([mixed_with_dead_end()])["difficulty"][0]["wrong"] == 1


def test_error_pairs_only_on_request():
    default = extract([mixed_with_dead_end()])["pairs"]
    assert all(p["kind"] != "error" for p in default)
    pairs = extract([mixed_with_dead_end()], ExtractConfig(error_pairs=True))["pairs"]
    errors = [p for p in pairs if p["kind"] == "error"]
    # at the root: S1 (reached a correct answer) against the failed E1; a failed
    # step's Q is taken as -1 (no rollout visits it)
    assert [
        (p["prompt"], p["chosen"], p["rejected"], p["chosen_q"], p["rejected_q"]) for p in errors
    ] == [(build_prompt("What is 1 + 1?"), S1, E1, 1.0, -1.0)]
    assert [p for p in pairs if p["kind"] != "error"] == default


def test_q_labelled_steps_and_outcomes_by_hand():
    """P5 (mixed_with_dead_end): every visited step that did not fail, in node order, with its
    Q: S1, C1, answer 2 at +1; S2, C3, answer 5 at -1; S3 (no valid child) at -1; the failed
    E1s (nodes 8, 9) are left out. Outcomes: the graded trajectories 3 (+1) and 6 (-1); S3's
    ending is not graded."""
    data = extract([mixed_with_dead_end()])
    p = build_prompt("What is 1 + 1?")
    c1, c3 = C1 + format_output("2"), C3 + format_output("5")
    assert [(r["prompt"], r["completion"], r["target"]) for r in data["step_values"]] == [
        (p, S1, 1.0),
        (p + S1, c1, 1.0),
        (p + S1 + c1, _answer("2"), 1.0),
        (p, S2, -1.0),
        (p + S2, c3, -1.0),
        (p + S2 + c3, _answer("5"), -1.0),
        (p, S3, -1.0),
    ]
    assert {(r["problem_id"], r["kind"]) for r in data["step_values"]} == {("P5", "q")}
    assert [(r["prompt"], r["completion"], r["target"], r["kind"]) for r in data["outcomes"]] == [
        (p, S1 + c1 + _answer("2"), 1.0, "outcome"),
        (p, S2 + c3 + _answer("5"), -1.0, "outcome"),
    ]


def test_q_labels_include_the_ppm_prior_and_outcomes_count_a_response_once():
    """easy_tree's Q = (prior + rewards) / (1 + visits), node order 1..6 (its docstring):
    0.5, 0.75, 1.0, 0.5, 0.25, 1.0. The same tree grown twice (another seed) gives its steps
    twice (two trees' statistics) but each of its 3 responses once as an outcome."""
    again = easy_tree()
    again.seed = 9
    data = extract([easy_tree(), again])
    targets = [r["target"] for r in data["step_values"]]
    assert targets == pytest.approx([0.5, 0.75, 1.0, 0.5, 0.25, 1.0] * 2)
    assert [r["target"] for r in data["outcomes"]] == [1.0, 1.0, 1.0]
    report = extract_with_report([easy_tree(), again])[1]
    assert report["value_records"] == {"step_values": 12, "outcomes": 3}


def old_tree_with_an_error_on_the_path() -> Tree:
    """A tree written before failed steps were discarded: a rollout went through
    the failed step E1 (NameError) and still reached the correct answer."""
    t = Tree.new("P6", "What is 1 + 1?", "2", build_prompt("What is 1 + 1?"), seed=6)
    e = t.add_child(0, E1, "step", error="NameError: name 'b' is not defined")
    c = t.add_child(
        e, "\n# a = 1 again\na = 1\nprint(a + 1)\n<end_of_code>", "code_end", output="2"
    )
    a = t.add_child(c, _answer("2"), "answer", terminal=True, answer="2", correct=True)
    s1 = t.add_child(0, S1, "step")
    c1 = t.add_child(s1, C1, "code_end", output="2")
    a1 = t.add_child(c1, _answer("2"), "answer", terminal=True, answer="2", correct=True)
    t.backup(a, 1.0)
    t.backup(a1, 1.0)
    return t


def test_sft_never_holds_a_failed_step():
    sft = extract([old_tree_with_an_error_on_the_path()])["sft"]
    assert [r["response"] for r in sft] == [S1 + C1 + format_output("2") + _answer("2")]


def test_report_counts_by_hand():
    """mixed_tree (P1): 4 rollouts, all answers: 1 correct + 2 wrong trajectories;
    step pairs at depth 1 (root) and 2 (after S1); 2 final pairs.
    errors_tree (P4): 3 rollouts: an answer, a no-valid-child, a depth limit.
    easy_tree (P2): 3 rollouts, 3 correct; SFT 0.625 tie broken by min Q (no tie)."""
    report = extract_with_report([mixed_tree(), errors_tree(), easy_tree()])[1]
    assert report["problems"] == 3
    assert report["rollouts"] == 10
    assert report["rollout_endings"] == {
        "answer": 8,
        "depth_limit": 1,
        "no_valid_child": 1,
        "error": 0,
        "no_boxed_answer": 0,
    }
    assert report["trajectories"] == {"answered": 7, "correct": 5, "wrong": 2, "unanswered": 2}
    assert report["step_pairs_by_depth"] == {"1": 1, "2": 1}
    assert report["pairs"] == {"step": 2, "final": 2, "error": 0}
    assert report["sft"] == {"records": 4, "ties": 0}
    assert report["difficulty"] == {"easy": 2, "medium": 1, "hard": 0}


def test_report_counts_sft_ties_decided_by_node_order():
    """Three correct one-step trajectories with equal Q: the top-2 cut is a tie."""
    t = Tree.new("P7", "What is 2 + 2?", "4", build_prompt("What is 2 + 2?"), seed=7)
    for value in ("4", "4.0", "04"):
        end = t.add_child(0, _answer(value), "answer", terminal=True, answer=value, correct=True)
        t.backup(end, 1.0)
    report = extract_with_report([t])[1]
    assert report["sft"] == {"records": 2, "ties": 1}


# --- the input and output layer: finding trees, duplicates, replacing outputs -------------------


def _write_trees(path, trees) -> None:
    with TreeWriter(path) as writer:
        for tree in trees:
            writer.write(tree)


def _outputs(out) -> dict[str, str]:
    texts = {n: (out / f"{n}.jsonl").read_text() for n in ("sft", "pairs", "difficulty")}
    return {**texts, "report": (out / "report.json").read_text()}


@pytest.fixture
def good_data(tmp_path):
    """An output folder holding the data extracted from the three trees."""
    trees = tmp_path / "run" / "trees"
    _write_trees(trees / "trees-00000-of-00001.jsonl", [mixed_tree(), easy_tree(), hard_tree()])
    out = tmp_path / "run" / "data"
    assert main(["--trees", str(trees), "--out", str(out)]) == 0
    return trees, out, _outputs(out)


def test_no_trees_found_is_an_error_and_keeps_the_old_outputs(good_data, tmp_path):
    trees, out, before = good_data
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=rf"--trees {empty}: no trees-\*\.jsonl files there"):
        main(["--trees", str(empty), "--out", str(out)])
    # the parent of trees/ is a likely slip: say where the trees are
    with pytest.raises(ValueError, match=rf"no trees-\*\.jsonl files there; did you mean {trees}"):
        main(["--trees", str(trees.parent), "--out", str(out)])
    (empty / "trees-00000-of-00001.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"no trees in .*trees-00000-of-00001\.jsonl"):
        main(["--trees", str(empty), "--out", str(out)])
    assert _outputs(out) == before


def test_duplicate_trees_count_once_with_a_warning(good_data, tmp_path, caplog):
    trees, _, before = good_data
    shard = trees / "trees-00000-of-00001.jsonl"
    # the same file twice, and a shard whose trees were all written twice (two runs)
    twice = tmp_path / "twice" / "trees-00000-of-00001.jsonl"
    twice.parent.mkdir()
    twice.write_text(shard.read_text() * 2)
    assert main(["--trees", str(shard), str(shard), "--out", str(tmp_path / "o1")]) == 0
    assert _outputs(tmp_path / "o1") == before
    assert f"{shard} is given more than once; reading it once" in caplog.text
    caplog.clear()
    assert main(["--trees", str(twice.parent), "--out", str(tmp_path / "o2")]) == 0
    assert _outputs(tmp_path / "o2") == before
    assert "skipped 3 duplicate trees (same problem, attempt and seed)" in caplog.text
    assert f"P1 attempt 0 seed 1 at {twice}:4 (first at {twice}:1)" in caplog.text
    caplog.clear()
    # the same problem and attempt with another seed is another tree: both count
    other = mixed_tree()
    other.seed = 77
    _write_trees(tmp_path / "seeded" / "trees-00000-of-00001.jsonl", [mixed_tree(), other])
    assert main(["--trees", str(tmp_path / "seeded"), "--out", str(tmp_path / "o3")]) == 0
    difficulty = [
        json.loads(x) for x in (tmp_path / "o3" / "difficulty.jsonl").read_text().splitlines()
    ]
    assert difficulty == [
        {
            "schema": "rstar-difficulty/1",
            "problem_id": "P1",
            "difficulty": "medium",
            "correct": 2,
            "wrong": 4,
        }
    ]
    assert "duplicate" not in caplog.text


def test_a_failure_while_writing_replaces_no_output(good_data, monkeypatch):
    import rstar_pl.data.records as records_module

    trees, out, before = good_data
    real = records_module.json_line
    calls = {"pairs": 0}

    def disk_fills_during_pairs(record):
        """A line as the records' writer makes it, except that the disk fills while the
        pairs are written."""
        if "chosen" in record:
            calls["pairs"] += 1
            if calls["pairs"] == 2:
                raise OSError(28, "No space left on device")
        return real(record)

    monkeypatch.setattr(records_module, "json_line", disk_fills_during_pairs)
    with pytest.raises(OSError, match="No space left"):
        main(["--trees", str(trees), "--out", str(out), "--sft-per-problem", "1"])
    assert _outputs(out) == before
    assert sorted(p.name for p in out.iterdir()) == [
        "difficulty.jsonl",
        "outcomes.jsonl",
        "pairs.jsonl",
        "report.json",
        "sft.jsonl",
        "step_values.jsonl",
    ]


def test_a_non_utf8_tree_file_names_the_file_and_line(tmp_path):
    shard = tmp_path / "trees-00000-of-00001.jsonl"
    _write_trees(shard, [mixed_tree()])
    with open(shard, "ab") as handle:
        handle.write(b'{"problem_id": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"{shard}:2: not UTF-8 text \(byte 0xe9\)"):
        main(["--trees", str(tmp_path), "--out", str(tmp_path / "out")])


def test_a_terminal_sees_how_far_reading_the_trees_is(tmp_path, in_terminal):
    shard = tmp_path / "trees" / "trees-00000-of-00001.jsonl"
    _write_trees(shard, [mixed_tree(), easy_tree(), hard_tree()])
    code, text = in_terminal(
        ["extract", "--trees", str(shard.parent), "--out", str(tmp_path / "o")]
    )
    assert code == 0
    assert re.search(r"reading trees: 100%.*3/3 \[\d\d:\d\d<\d\d:\d\d", text), text
