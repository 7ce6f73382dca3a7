"""The lock-step driver and the expansion phases on hand-built policies.

A `TablePolicy` answers each context with a fixed list of completions (keyed by
the response so far), so every tree below is known in advance; code really runs
in the sandbox and answers are really graded.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from rstar_pl.backends.base import Completion
from rstar_pl.backends.scripted import ScriptedBackend, ScriptedScorer, scripts_from_problems
from rstar_pl.data.problems import ProblemsConfig, load_problems
from rstar_pl.search import (
    BeamConfig,
    BestOfNConfig,
    MCTSConfig,
    SearchEnv,
    Tree,
    best_answered,
    recompute_statistics,
    run_beam,
    run_best_of_n,
    run_mcts,
)
from rstar_pl.search.mcts import new_tree
from rstar_pl.search.solve import solve_greedy
from rstar_pl.steps import (
    END_OF_ANSWER,
    END_OF_CODE,
    END_OF_OUTPUT,
    END_OF_STEP,
    build_prompt,
    format_output,
    program_output,
)


class TablePolicy:
    """Completions by response-so-far; the k-th call for a context gets entry k
    (the last one again after that). Unknown contexts get no completion."""

    per_prompt_seeds = True

    def __init__(self, question: str, table: dict[str, list[list[tuple[str, str | None]]]]):
        self.prompt = build_prompt(question)
        self.table = table
        self.served: dict[str, int] = defaultdict(int)
        self.batches: list[list[str]] = []

    def generate(self, prompts, *, n=1, **kwargs):
        self.batches.append([p[len(self.prompt) :] for p in prompts])
        out = []
        for prompt in prompts:
            response = prompt[len(self.prompt) :]
            entries = self.table.get(response, [[]])
            k = min(self.served[response], len(entries) - 1)
            self.served[response] += 1
            out.append([Completion(text, stop, 1) for text, stop in entries[k]])
        return out


class TableScorer:
    """PPM stand-in: a value per last step text (default 0)."""

    def __init__(self, values: dict[str, float]):
        self.values = values

    def score(self, texts):
        return [next((v for k, v in self.values.items() if t.endswith(k)), 0.0) for t in texts]


class Problem:
    def __init__(self, question: str, answer: str | None, id: str = "p"):
        self.id, self.question, self.answer = id, question, answer


Q = "What is 1 + 1?"
X = ("<code>\nx = 1\n", END_OF_STEP)
X_TEXT = "<code>\nx = 1\n<end_of_step>"
BAD = ("<code>\nx = undefined_name\n", END_OF_STEP)
PRINT = ("\nprint(x + 1)\n", END_OF_CODE)
PRINT_TEXT = "\nprint(x + 1)\n<end_of_code>"
ANSWER = ("<answer>The answer is \\boxed{2}.", END_OF_ANSWER)
WRONG = ("<answer>The answer is \\boxed{3}.", END_OF_ANSWER)
AFTER_PRINT = X_TEXT + PRINT_TEXT + format_output("2")


def test_error_children_are_kept_but_never_explored(sandbox):
    """Root samples: x = 1 (runs) and x = undefined_name (NameError). Under
    first-play inf the error child, unvisited, would be tried first; it is not
    selectable, gets no visit, and every rollout ends in an answer."""
    policy = TablePolicy(
        Q,
        {
            "": [[BAD, X]],
            X_TEXT: [[PRINT]],
            AFTER_PRINT: [[ANSWER, WRONG]],
        },
    )
    env = SearchEnv(policy, sandbox)
    (tree,) = run_mcts([Problem(Q, "2")], env, MCTSConfig(rollouts=8, n=2, unvisited="inf"), seed=0)
    bad, x = tree.children[0]
    assert tree.error[bad] == "NameError: name 'undefined_name' is not defined"
    assert tree.visits[bad] == 0 and tree.prior[bad] is None and not tree.terminal[bad]
    # both answers are reached once; then the tree has nothing left to find
    ends = [path[-1] for path, _ in tree.rollouts]
    assert [tree.answer[e] for e in ends] == ["2", "3"]
    assert [r for _, r in tree.rollouts] == [1.0, -1.0]
    assert tree.closed[0] and tree.visits[0] == 2 and tree.value_sum[0] == 0.0
    assert all(bad not in path for path, _ in tree.rollouts)
    visits, value_sum = recompute_statistics(tree)
    assert visits == tree.visits and value_sum == tree.value_sum


def test_errors_threshold_counts_failed_expansions_in_a_row(sandbox):
    """The root's first expansion fails entirely; with errors_threshold 2 it is
    expanded again (new seed) and the second try runs; with 1 the root has no
    valid child and the single rollout ends there."""
    table = {"": [[BAD], [X]], X_TEXT: [[PRINT]], AFTER_PRINT: [[ANSWER]]}
    two = run_mcts(
        [Problem(Q, "2")],
        SearchEnv(TablePolicy(Q, table), sandbox),
        MCTSConfig(rollouts=3, n=1, errors_threshold=2),
        seed=0,
    )[0]
    assert [two.error[c] is not None for c in two.children[0]] == [True, False]
    assert two.rollouts[0][1] == 1.0 and not two.terminal[0]
    one = run_mcts(
        [Problem(Q, "2")],
        SearchEnv(TablePolicy(Q, table), sandbox),
        MCTSConfig(rollouts=3, n=1, errors_threshold=1),
        seed=0,
    )[0]
    assert len(one) == 2 and one.error[1] is not None
    assert one.terminal[0] and one.correct[0] is False and one.rollouts == [([0], -1.0)]


def test_a_node_whose_samples_all_fail_ends_the_path_and_propagates(sandbox):
    """x = 1 continues only with failing code: x is terminal ("no valid child"),
    the rollout ends there with -1, and once the other root child's answer is
    known too the root is closed."""
    policy = TablePolicy(
        Q,
        {
            "": [[X, ANSWER]],
            X_TEXT: [[("\nprint(y)\n", END_OF_CODE)]],
        },
    )
    (tree,) = run_mcts(
        [Problem(Q, "2")],
        SearchEnv(policy, sandbox),
        MCTSConfig(rollouts=5, n=2, unvisited="inf"),
        seed=0,
    )
    x, answer = tree.children[0]
    (dead,) = tree.children[x]
    assert tree.error[dead] == "NameError: name 'y' is not defined"
    assert tree.output[dead] == "NameError: name 'y' is not defined"  # what the model would see
    assert tree.terminal[x] and tree.answer[x] is None
    assert sorted(tree.rollouts) == sorted([([0, x], -1.0), ([0, answer], 1.0)])
    assert tree.closed[0]


def test_round1_end_of_output_stop_stores_the_parsed_step(sandbox):
    """Round 1 also stops at <end_of_output>: the model's invented output is
    dropped from the node, the real one is stored, and two completions that
    differ only in the invented output are one child."""
    invented = [
        ("<code>\nx = 1\nprint(x + 1)\n<end_of_code>\n<output>7", END_OF_OUTPUT),
        ("<code>\nx = 1\nprint(x + 1)\n<end_of_code>\n<output>8", END_OF_OUTPUT),
    ]
    policy = TablePolicy(Q, {"": [invented]})
    (tree,) = run_mcts(
        [Problem(Q, "2")],
        SearchEnv(policy, sandbox),
        MCTSConfig(rollouts=1, n=2, max_depth=2),
        seed=0,
    )
    (child,) = tree.children[0]
    assert tree.text[child] == "<code>\nx = 1\nprint(x + 1)\n<end_of_code>"
    assert tree.output[child] == "2"


def test_search_and_greedy_solving_show_a_run_the_same_way(sandbox):
    """One formatter: the same failing program gives the same <output> text in a
    search node and in a greedy solution (and in the harness, which uses both)."""
    code = ("<code>\nprint('partial')\nprint(1 / 0)\n", END_OF_CODE)
    policy = TablePolicy(Q, {"": [[code]]})
    (tree,) = run_mcts(
        [Problem(Q, "2")], SearchEnv(policy, sandbox), MCTSConfig(rollouts=1, n=1), seed=0
    )
    node_output = tree.output[1]
    assert node_output == "partial\nZeroDivisionError: division by zero"
    shown = code[0] + END_OF_CODE + format_output(node_output)
    greedy = TablePolicy(Q, {"": [[code]], shown: [[ANSWER]]})
    [solution] = solve_greedy(greedy, [Q], sandbox=sandbox, max_code_runs=1)
    assert solution.response == shown + ANSWER[0] + END_OF_ANSWER
    [result] = sandbox.run_many(["print('partial')\nprint(1 / 0)\n"])
    assert program_output(result) == node_output


def test_known_outcomes_are_not_overwritten_by_the_ppm(sandbox):
    """PPM-initialised annotation with a reference: a step starts at the PPM's
    value, an answer at its graded outcome (+1 / -1); without a reference
    (test time) the answers are scored by the PPM too."""
    policy = {"": [[X, ANSWER, WRONG]]}
    scorer = TableScorer(
        {X_TEXT: 0.3, "boxed{2}.<end_of_answer>": -0.4, "boxed{3}.<end_of_answer>": 0.9}
    )
    config = MCTSConfig(rollouts=1, n=3, annotation="ppm")
    (train,) = run_mcts(
        [Problem(Q, "2")], SearchEnv(TablePolicy(Q, policy), sandbox, scorer), config, seed=0
    )
    x, right, wrong = train.children[0]
    assert [train.prior[i] for i in (x, right, wrong)] == [0.3, 1.0, -1.0]
    (test,) = run_mcts(
        [Problem(Q, "2")],
        SearchEnv(TablePolicy(Q, policy), sandbox, scorer),
        config,
        seed=0,
        use_reference=False,
    )
    assert [test.prior[i] for i in test.children[0]] == [0.3, -0.4, 0.9]
    # rollout 1 went to the highest prior: the right answer (train), the 0.9 one (test)
    assert train.rollouts == [([0, right], 1.0)] and test.rollouts == [([0, wrong], 0.9)]


def test_beam_shrinks_as_answers_are_found(sandbox):
    """Beam 2. Level 1: s1, s2 (s3 scores lower). Level 2: s1 -> an answer; s2 ->
    t1, t2. Level 3: one answer found, so the beam is 2 - 1 = 1: only t1 (the
    higher score) is expanded, giving the second answer; t2 never is."""
    s = {k: (f"<code>\n{k} = 1\n", END_OF_STEP) for k in ("s1", "s2", "s3")}
    text = {k: v[0] + END_OF_STEP for k, v in s.items()}
    t1, t2 = ("\nt1 = 2\n", END_OF_STEP), ("\nt2 = 2\n", END_OF_STEP)
    policy = TablePolicy(
        Q,
        {
            "": [[s["s1"], s["s2"], s["s3"]]],
            text["s1"]: [[ANSWER]],
            text["s2"]: [[t1, t2]],
            text["s2"] + "\nt1 = 2\n<end_of_step>": [[WRONG]],
            text["s2"] + "\nt2 = 2\n<end_of_step>": [[ANSWER]],
        },
    )
    scorer = TableScorer(
        {
            "s1 = 1\n<end_of_step>": 0.5,
            "s2 = 1\n<end_of_step>": 0.4,
            "s3 = 1\n<end_of_step>": 0.1,
            "t1 = 2\n<end_of_step>": 0.6,
            "t2 = 2\n<end_of_step>": 0.2,
        }
    )
    trees, ranked = run_beam(
        [Problem(Q, "2")],
        SearchEnv(policy, sandbox, scorer),
        BeamConfig(beam_width=2, samples_per_node=3),
        seed=0,
    )
    assert sorted(t.answer for t in ranked[0]) == ["2", "3"]
    assert len(policy.batches) == 3
    assert policy.batches[2] == [text["s2"] + "\nt1 = 2\n<end_of_step>"]


def test_test_time_best_is_the_best_answered_trajectory():
    """Without a reference a depth-limit terminal may hold a higher Q than any
    answer (PPM 0.9, one rollout of -1: Q -0.05 > -0.5); the run's best
    trajectory is still its best answered one."""
    tree = Tree.new("p", Q, None, build_prompt(Q), seed=0)
    deep = tree.add_child(0, "x<end_of_step>", "step", terminal=True, prior=0.9)
    answer = tree.add_child(
        0, "<answer>\\boxed{2}<end_of_answer>", "answer", terminal=True, answer="2", prior=-0.5
    )
    tree.backup(deep, -1.0)
    tree.backup(answer, -0.5)
    assert tree.q(deep) == pytest.approx(-0.05) and tree.q(answer) == -0.5
    best = best_answered(tree)
    assert best.nodes == (0, answer) and best.answer == "2" and best.score == -0.5
    empty = Tree.new("p", Q, None, build_prompt(Q), seed=0)
    empty.backup(empty.add_child(0, "y<end_of_step>", "step", terminal=True, prior=0.1), -1.0)
    assert best_answered(empty) is None


@pytest.fixture(scope="module")
def scripted():
    problems = load_problems(ProblemsConfig(source="builtin:scripted_problems")).problems
    return problems, scripts_from_problems(problems)


class Recording:
    def __init__(self, inner):
        self.inner, self.batches = inner, []
        self.per_prompt_seeds = True

    def generate(self, prompts, **kwargs):
        self.batches.append(list(prompts))
        return self.inner.generate(prompts, **kwargs)


@pytest.mark.parametrize("strategy", ["mcts", "beam", "best_of_n"])
def test_every_strategy_makes_one_backend_call_per_level_for_all_trees(strategy, scripted, sandbox):
    problems, scripts = scripted
    backend = Recording(ScriptedBackend(scripts, p_wrong=0.3, p_error=0.2, seed=0))
    env = SearchEnv(backend, sandbox, ScriptedScorer(scripts, seed=0))
    if strategy == "mcts":
        trees = run_mcts(problems, env, MCTSConfig(rollouts=4, n=3, errors_threshold=2), seed=0)
    elif strategy == "beam":
        trees, _ = run_beam(
            problems, env, BeamConfig(beam_width=2, samples_per_node=3, errors_threshold=2), seed=0
        )
    else:
        trees, _ = run_best_of_n(problems, env, BestOfNConfig(n=3, errors_threshold=2), seed=0)
    # the first call covers every tree; each later call every tree still running
    assert {p.split("<|assistant|>")[0] for p in backend.batches[0]} == {
        build_prompt(p.question).split("<|assistant|>")[0] for p in problems
    }
    assert env.calls["generate"] == len(backend.batches)
    assert env.calls["run_many"] <= len(backend.batches)
    for tree in trees:
        # no path of the search passes through a failed step
        for i in range(1, len(tree)):
            if tree.error[i] is not None:
                assert not tree.children[i] and tree.visits[i] == 0
    if strategy != "mcts":
        return
    # MCTS: one lead per tree per call
    for batch in backend.batches:
        questions = [p.split("<|assistant|>")[0] for p in batch]
        assert len(set(questions)) == len(batch)


def test_trees_do_not_depend_on_the_batch_with_retries(scripted, sandbox):
    problems, scripts = scripted

    def run(batch):
        env = SearchEnv(ScriptedBackend(scripts, p_wrong=0.3, p_error=0.4, seed=0), sandbox)
        return run_mcts(batch, env, MCTSConfig(rollouts=5, n=2, errors_threshold=2), seed=1)

    together = run(problems[:4])
    alone = run([problems[2]])
    assert together[2].to_record() == alone[0].to_record()
    # some node was expanded twice (more children than one expansion's 2 samples)
    assert any(len(kids) > 2 for t in together for kids in t.children)


def test_new_tree_hides_the_reference_on_request():
    tree = new_tree(Problem(Q, "2"), seed=0, attempt=0, use_reference=False)
    assert tree.reference is None
