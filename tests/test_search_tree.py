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
    # select_leaf follows UCT down to a terminal: root children {s1}; s1's children:
    # s2 (Q 1, N 2), bad (Q -1, N 1); ln 3 = 1.0986 -> s2 = 1 + 2*sqrt(1.0986/2) = 2.48,
    # bad = -1 + 2*sqrt(1.0986) = 1.10 -> s2, then its only child
    assert select_leaf(tree, 2.0) == good


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
    assert back.error_run == [0, 1, 0]
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
        "rstar_pl.generate, rstar_pl.treeio\n"
        "print(','.join(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
