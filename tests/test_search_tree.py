"""The flat tree: UCT by hand-worked numbers, backup, the prior rule, records."""

from __future__ import annotations

import pytest

from rstar_pl.search.mcts import select_child, select_leaf
from rstar_pl.search.tree import SCHEMA, Tree, TreeRecordError, recompute_statistics


def _tree() -> Tree:
    return Tree.new("p", "What is 1+1?", "2", "PROMPT", seed=7)


def test_uct_picks_by_hand_worked_numbers():
    tree = _tree()
    a = tree.add_child(0, "a<end_of_step>", "step")
    b = tree.add_child(0, "b<end_of_step>", "step")
    c = tree.add_child(0, "c<end_of_step>", "step")
    tree.visits[0] = 10
    for node, visits, value in ((a, 4, 2.0), (b, 1, -1.0), (c, 5, 2.0)):
        tree.visits[node], tree.value_sum[node] = visits, value
    # ln 10 = 2.302585
    # c=2:   a = 0.5 + 2*sqrt(2.302585/4) = 2.0174;  b = -1 + 2*sqrt(2.302585) = 2.0349;
    #        c = 0.4 + 2*sqrt(2.302585/5) = 1.7572  -> b
    assert select_child(tree, 0, 2.0) == b
    # c=0.5: a = 0.5 + 0.3794 = 0.8794; b = -1 + 0.7587 = -0.2413; c = 0.4 + 0.3393 = 0.7393 -> a
    assert select_child(tree, 0, 0.5) == a
    # an unvisited child (no prior) is tried before any visited one
    d = tree.add_child(0, "d<end_of_step>", "step")
    assert select_child(tree, 0, 2.0) == d


def test_unvisited_children_in_sampling_order_and_priors_rank_new_children():
    tree = _tree()
    first = tree.add_child(0, "x<end_of_step>", "step")
    tree.add_child(0, "y<end_of_step>", "step")
    assert select_child(tree, 0, 2.0) == first
    ppm = _tree()
    ppm.add_child(0, "x<end_of_step>", "step", prior=-0.2)
    best = ppm.add_child(0, "y<end_of_step>", "step", prior=0.7)
    ppm.add_child(0, "z<end_of_step>", "step", prior=0.1)
    # the root has never been visited: ln N = 0, so the prior alone decides
    assert select_child(ppm, 0, 2.0) == best


def test_backup_adds_reward_to_every_node_on_the_path():
    tree = _tree()
    s1 = tree.add_child(0, "s1<end_of_step>", "step")
    s2 = tree.add_child(s1, "s2<end_of_code>", "code_end", output="2")
    good = tree.add_child(
        s2, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2", correct=True
    )
    bad = tree.add_child(
        s1, "<answer>\\boxed{3}<end_of_answer>", "answer", terminal=True, answer="3", correct=False
    )
    tree.backup(good, tree.terminal_reward(good))
    tree.backup(bad, tree.terminal_reward(bad))
    tree.backup(good, tree.terminal_reward(good))
    assert tree.visits == [3, 3, 2, 2, 1]
    assert tree.value_sum == [1.0, 1.0, 2.0, 2.0, -1.0]
    assert tree.q(s1) == pytest.approx(1 / 3)
    assert tree.rollouts == [([0, 1, 2, 3], 1.0), ([0, 1, 4], -1.0), ([0, 1, 2, 3], 1.0)]
    # both answers are known: nothing is left to select anywhere, the tree is closed
    assert tree.closed == [True] * 5
    assert select_leaf(tree, 2.0) is None


def test_selection_skips_error_children_and_known_terminals():
    """Error children are never selected, not even unvisited; an answer a rollout
    has reached is never selected again, and a node whose children are all
    closed (or errors) is closed itself, up to the root."""
    tree = _tree()
    err = tree.add_child(0, "e<end_of_step>", "step", error="NameError: name 'e' is not defined")
    s1 = tree.add_child(0, "s1<end_of_step>", "step")
    assert select_child(tree, 0, 2.0) == s1  # first-play inf, but err is not selectable
    a1 = tree.add_child(
        s1, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2", correct=True
    )
    s2 = tree.add_child(s1, "s2<end_of_step>", "step")
    tree.backup(a1, 1.0)
    # a1 (Q 1, N 1) would win UCT against the unvisited s2 under first-play 0
    # (1 + 2*sqrt(ln 1 / 1) = 1 > 0), but a known answer is skipped
    assert select_child(tree, s1, 2.0, unvisited=0.0) == s2
    assert not tree.closed[s1] and select_leaf(tree, 2.0, unvisited=0.0) == s2
    dead = tree.add_child(s2, "x<end_of_step>", "step", error="SyntaxError: invalid syntax")
    tree.end_without_valid_child(s2)
    assert tree.terminal[s2] and tree.correct[s2] is False and tree.answer[s2] is None
    tree.backup(s2, tree.terminal_reward(s2))
    # s2 closed -> s1's children all closed -> s1 closed -> the root's only valid child
    # is closed -> the root is closed; the error children changed nothing on the way
    assert [tree.closed[i] for i in (0, s1, a1, s2)] == [True] * 4
    assert not tree.closed[err] and not tree.closed[dead]
    assert tree.visits[err] == tree.visits[dead] == 0
    assert tree.visits[0] == 2 and tree.value_sum[0] == 0.0
    assert select_leaf(tree, 2.0) is None
    # the closed state is a function of the file: a loaded tree has the same
    assert Tree.from_record(tree.to_record()).closed == tree.closed


def test_first_play_value_of_unvisited_children_by_hand():
    """Root N 3, value -1 (Q -1/3); child a N 2, value -2 (Q -1); child b unvisited.

    c = 1: UCT(a) = -1 + sqrt(ln 3 / 2) = -1 + sqrt(0.549306) = -1 + 0.741151 = -0.258849.
    b scores its first-play value: inf -> b; 0 -> b; parent_q = -1/3 -> a;
    -0.2 -> b; -0.5 -> a.
    """
    tree = _tree()
    a = tree.add_child(0, "a<end_of_step>", "step")
    b = tree.add_child(0, "b<end_of_step>", "step")
    tree.visits[0], tree.value_sum[0] = 3, -1.0
    tree.visits[a], tree.value_sum[a] = 2, -2.0
    expected = {"inf": b, 0.0: b, "parent_q": a, -0.2: b, -0.5: a}
    for unvisited, child in expected.items():
        assert select_child(tree, 0, 1.0, unvisited=unvisited) == child, unvisited
    assert select_child(tree, 0, 1.0) == b  # the default is plain UCT: unvisited first


def test_unvisited_answers_stay_selectable():
    tree = _tree()
    s1 = tree.add_child(0, "s1<end_of_step>", "step")
    a1 = tree.add_child(
        s1, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2", correct=True
    )
    a2 = tree.add_child(
        s1, "<answer>\\boxed{3}<end_of_answer>", "answer", terminal=True, answer="3", correct=False
    )
    tree.backup(a1, 1.0)
    assert not tree.closed[s1]
    assert select_leaf(tree, 2.0, unvisited=0.0) == a2
    tree.backup(a2, -1.0)
    assert tree.closed[s1] and tree.closed[0]


def test_prior_is_one_pseudo_visit_and_q_recomputes_from_rollouts():
    tree = _tree()
    a = tree.add_child(0, "a<end_of_step>", "step", prior=0.4)
    t = tree.add_child(
        a,
        "<answer>\\boxed{2}<end_of_answer>",
        "answer",
        terminal=True,
        answer="2",
        correct=True,
        prior=0.9,
    )
    assert (tree.visits[a], tree.value_sum[a]) == (1, 0.4)
    tree.backup(t, 1.0)
    tree.backup(t, 1.0)
    # Q(a) = (0.4 + 1 + 1) / (1 + 2) = 0.8 ; Q(t) = (0.9 + 2) / 3
    assert tree.q(a) == pytest.approx(0.8)
    assert tree.q(t) == pytest.approx(2.9 / 3)
    visits, value_sum = recompute_statistics(Tree.from_record(tree.to_record()))
    assert visits == tree.visits == [2, 3, 3]
    assert value_sum == pytest.approx(tree.value_sum)


def test_test_time_reward_is_the_terminal_ppm_score_and_no_answer_is_wrong():
    tree = Tree.new("p", "q?", None, "PROMPT", seed=1)
    t = tree.add_child(
        0, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2", prior=0.3
    )
    dead = tree.add_child(0, "x<end_of_step>", "step", error="NameError", terminal=True, prior=0.8)
    assert tree.terminal_reward(t) == 0.3
    assert tree.terminal_reward(dead) == -1.0
    no_ppm = Tree.new("p", "q?", None, "PROMPT", seed=1)
    t2 = no_ppm.add_child(
        0, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2"
    )
    with pytest.raises(ValueError, match="needs a scorer"):
        no_ppm.terminal_reward(t2)


def test_record_round_trip_and_fields():
    tree = _tree()
    a = tree.add_child(0, "a<end_of_step>", "step", error="NameError: x")
    b = tree.add_child(a, "b<end_of_code>", "code_end", output="2")
    tree.backup(b, -1.0)
    record = tree.to_record()
    assert record["schema"] == SCHEMA
    assert {"problem_id", "question", "reference", "seed", "nodes", "rollouts"} <= set(record)
    assert record["nodes"][0]["parent"] is None and record["nodes"][0]["kind"] == "root"
    assert set(record["nodes"][1]) == {
        "id",
        "parent",
        "depth",
        "text",
        "kind",
        "output",
        "error",
        "terminal",
        "answer",
        "correct",
        "visits",
        "value_sum",
        "prior",
    }
    back = Tree.from_record(record)
    assert back.to_record() == record
    assert back.closed == [False, False, False]  # b was never a terminal
    assert back.children == [[1], [2], []]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(schema="rstar-tree/0"), "schema must be"),
        (lambda r: r.pop("rollouts"), "missing key 'rollouts'"),
        (lambda r: r["nodes"][1].update(parent=5), "invalid parent"),
    ],
)
def test_bad_records_raise_one_clear_error(mutate, message):
    tree = _tree()
    tree.add_child(0, "a<end_of_step>", "step")
    record = tree.to_record()
    mutate(record)
    with pytest.raises(TreeRecordError, match=message):
        Tree.from_record(record, "trees.jsonl:3")


def test_search_imports_no_model_library():
    import subprocess
    import sys

    code = (
        "import sys, rstar_pl.search, rstar_pl.backends.scripted, rstar_pl.extract, "
        "rstar_pl.generate, rstar_pl.data.trees\n"
        "print(','.join(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
