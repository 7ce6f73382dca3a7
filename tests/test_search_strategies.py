"""Test-time strategies on the search machinery: step-level beam search,
best-of-N, and majority vote (plain and score-weighted)."""

from __future__ import annotations

import pytest

from rstar_pl.backends.scripted import ScriptedBackend, ScriptedScorer, scripts_from_problems
from rstar_pl.data.problems import ProblemsConfig, load_problems
from rstar_pl.search import (
    BeamConfig,
    BestOfNConfig,
    SearchEnv,
    majority_vote,
    run_beam,
    run_best_of_n,
)


@pytest.fixture(scope="module")
def problems():
    return load_problems(ProblemsConfig(source="builtin:scripted_problems")).problems


def _env(problems, sandbox, *, noise, p_wrong=0.4, scorer=True):
    scripts = scripts_from_problems(problems)
    return SearchEnv(
        ScriptedBackend(scripts, p_wrong=p_wrong, p_error=0.1, seed=0),
        sandbox,
        ScriptedScorer(scripts, margin=0.6, noise=noise, seed=0) if scorer else None,
    )


def test_beam_search_with_a_faithful_scorer_finds_every_answer(problems, sandbox):
    # noise 0: the scorer ranks every correct step above every wrong one; with 8
    # samples per node (each correct with p = 0.6) a node misses the correct step
    # with p = 0.4^8 < 0.1%
    env = _env(problems, sandbox, noise=0.0, p_wrong=0.3)
    trees, ranked = run_beam(problems, env, BeamConfig(beam_width=2, samples_per_node=8), seed=0)
    assert [r[0].correct for r in ranked] == [True] * len(problems)
    assert [r[0].answer for r in ranked] == [p.answer for p in problems]
    for tree, trajs in zip(trees, ranked):
        scores = [t.score for t in trajs]
        assert scores == sorted(scores, reverse=True)
        # at most beam_width nodes are expanded per level
        expanded = [i for i in range(len(tree)) if tree.children[i]]
        for depth in set(tree.depth[i] for i in expanded):
            assert sum(1 for i in expanded if tree.depth[i] == depth) <= 2
    # one backend call per level for all problems: levels = longest solution + answer step
    longest = max(len(s.steps) for s in scripts_from_problems(problems)) + 1
    assert env.calls["generate"] <= longest + 2
    assert env.calls["score"] == env.calls["generate"]


def test_beam_search_needs_a_scorer(problems, sandbox):
    with pytest.raises(ValueError, match="scorer"):
        run_beam(problems, _env(problems, sandbox, noise=0.0, scorer=False), BeamConfig(), seed=0)


def test_best_of_n_returns_n_trajectories_ranked_by_score(problems, sandbox):
    env = _env(problems, sandbox, noise=0.3)
    trees, ranked = run_best_of_n(problems[:4], env, BestOfNConfig(n=5), seed=0)
    for tree, trajs in zip(trees, ranked):
        assert len(tree.children[0]) == 5  # one sample per chain; duplicates kept at the root
        assert all(len(tree.children[i]) <= 1 for i in range(1, len(tree)))
        # every chain ends in one trajectory, except one whose first step failed
        # (errors_threshold 1): it never left the root
        lost = sum(tree.error[c] is not None for c in tree.children[0])
        assert len(trajs) == 5 - lost
        assert all(tree.error[i] is None for t in trajs for i in t.nodes)
        scores = [t.score for t in trajs]
        assert scores == sorted(scores, reverse=True)
        for t in trajs:
            end = t.nodes[-1]
            # the PPM's score of an answer; -1 for a chain that ended without one
            assert t.score == (tree.prior[end] if tree.answer[end] is not None else -1.0)


def _same(a: str, b: str) -> bool:
    return a == b


def test_majority_vote_plain_weighted_and_top_k():
    answers = ["4", "5", "5", "4", "4", None]
    scores = [0.9, 0.8, 0.7, -0.9, -0.8, 1.0]
    # plain, all: "4" x3 vs "5" x2
    assert majority_vote(answers, scores, equivalent=_same) == "4"
    # weighted: 4 -> (1.9 + 0.1 + 0.2)/2 = 1.1 ; 5 -> (1.8 + 1.7)/2 = 1.75
    assert majority_vote(answers, scores, weighted=True, equivalent=_same) == "5"
    # answer-less candidates are dropped before the top K: None(1.0) takes no place
    # top-2 of the answered: "4"(0.9), "5"(0.8): a 1-1 tie broken by the higher best score
    assert majority_vote(answers, scores, top_k=2, equivalent=_same) == "4"
    # top-3: "4", "5", "5" -> "5"
    assert majority_vote(answers, scores, top_k=3, equivalent=_same) == "5"
    # top-5: "4" x3 (0.9, -0.8, -0.9) vs "5" x2 -> "4"
    assert majority_vote(answers, scores, top_k=5, equivalent=_same) == "4"
    assert majority_vote([None, None], [0.1, 0.2]) is None
    with pytest.raises(ValueError, match="needs scores"):
        majority_vote(["1"], weighted=True)


def test_majority_vote_groups_equivalent_answers_with_the_grader():
    # \frac{1}{2} and 0.5 are one answer for the grading module
    answers = ["\\frac{1}{2}", "0.5", "1/3"]
    assert majority_vote(answers, [0.1, 0.2, 0.9]) in ("\\frac{1}{2}", "0.5")


# --- step-score aggregation (best-of-N and beam rank by `aggregate`) --------------------------


class ForgetfulScorer(ScriptedScorer):
    """A PPM that forgets: every answer step scores +0.9 whatever came before it; other steps
    score +0.6 on a path that followed the script so far and -0.6 once it left it. Ranking by
    the last step ties every answer; ranking by the minimum sinks every path with a wrong step."""

    def score(self, texts):
        values = super().score(texts)
        return [0.9 if t.endswith("<end_of_answer>") else v for t, v in zip(texts, values)]


def test_path_score_aggregates_the_priors_of_the_path_by_hand():
    from rstar_pl.search.aggregate import path_score
    from rstar_pl.search.tree import Tree

    t = Tree.new("p", "q", None, "prompt", seed=0)
    a = t.add_child(0, "<code>\na = 1\n<end_of_step>", "step", prior=0.5)
    b = t.add_child(a, "\nb = 2\n<end_of_step>", "step", prior=-0.5)
    c = t.add_child(
        b, "<answer>\\boxed{3}<end_of_answer>", "answer", terminal=True, answer="3", prior=0.0
    )
    assert [path_score(t, c, how) for how in ("last", "min", "mean")] == [0.0, -0.5, 0.0]
    # (0.75 * 0.25 * 0.5) * 2 - 1
    assert path_score(t, c, "prod") == pytest.approx(-0.8125)
    assert path_score(t, a, "min") == 0.5
    with pytest.raises(
        ValueError, match="best_of_n.aggregate is 'max'; allowed: last, min, mean, prod"
    ):
        BestOfNConfig(aggregate="max")


@pytest.mark.parametrize("strategy", ["best_of_n", "beam"])
def test_min_aggregation_ranks_paths_with_a_wrong_step_last(strategy, problems, sandbox):
    """With the forgetful scorer, `last` gives every answer 0.9; `min` gives 0.6 to a path that
    followed the script and -0.6 to one with a wrong step, and ranks by it: the scores are
    exactly those two values, best first, and a right path (when there is one) comes first."""
    scripts = scripts_from_problems(problems[:4])
    scorer = ForgetfulScorer(scripts, margin=0.6, noise=0.0)
    env = SearchEnv(ScriptedBackend(scripts, p_wrong=0.4, p_error=0.0, seed=1), sandbox, scorer)
    if strategy == "best_of_n":

        def run(how):
            return run_best_of_n(problems[:4], env, BestOfNConfig(n=6, aggregate=how), seed=0)
    else:

        def run(how):
            return run_beam(
                problems[:4],
                env,
                BeamConfig(beam_width=3, samples_per_node=2, aggregate=how),
                seed=0,
            )

    _, last = run("last")
    answered = [t for ranked in last for t in ranked if t.answer is not None]
    assert answered and {t.score for t in answered} == {0.9}
    _, by_min = run("min")
    saw_both = False
    for problem, ranked in zip(problems[:4], by_min):
        answered = [t for t in ranked if t.answer is not None]
        scores = [t.score for t in answered]
        assert scores == sorted(scores, reverse=True)
        assert set(scores) <= {0.6, -0.6}
        saw_both |= set(scores) == {0.6, -0.6}
        if 0.6 in scores:
            assert answered[0].answer == problem.answer
    assert saw_both
