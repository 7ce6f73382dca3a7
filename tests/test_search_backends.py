"""Search with a real (tiny, random) model behind the policy protocol: the same
loop that runs the scripted backend runs a transformers model unchanged."""

from __future__ import annotations

import pytest

from rstar_pl.data.problems import ProblemsConfig, load_problems
from rstar_pl.search import MCTSConfig, Sampling, SearchEnv, recompute_statistics, run_mcts


class Counting:
    def __init__(self, inner, per_prompt_seeds: bool):
        self.inner, self.per_prompt_seeds, self.calls = inner, per_prompt_seeds, []

    def generate(self, prompts, **kwargs):
        self.calls.append((len(prompts), kwargs["seed"]))
        return self.inner.generate(prompts, **kwargs)


def test_mcts_runs_a_transformers_policy(tiny_model_dir, sandbox):
    from rstar_pl.backends.hf import HFBackend

    problems = load_problems(ProblemsConfig(source="builtin:scripted_problems", limit=3)).problems
    # This backend takes one seed per call (not a list), which it declares.
    backend = Counting(
        HFBackend(tiny_model_dir, device="cpu", dtype="float32"), per_prompt_seeds=False
    )
    config = MCTSConfig(
        rollouts=2, n=2, max_depth=3, errors_threshold=1, sampling=Sampling(max_tokens=12)
    )
    trees = run_mcts(problems, SearchEnv(backend, sandbox), config, seed=0)
    assert len(backend.calls) >= 1 and backend.calls[0][0] == 3  # all roots in one call
    assert all(isinstance(seed, int) for _, seed in backend.calls)
    for tree in trees:
        # 2 rollouts, or fewer when the random text left nothing to search (closed root)
        assert len(tree.rollouts) == 2 or (tree.closed[0] and len(tree.rollouts) == 1)
        assert len(tree.children[0]) >= 1
        visits, value_sum = recompute_statistics(tree)
        assert visits == tree.visits and value_sum == pytest.approx(tree.value_sum)
        # a random model writes no valid answer: every rollout is scored as wrong, and
        # none ends in (or passes through) a step that is not a valid step
        assert all(reward == -1.0 for _, reward in tree.rollouts)
        assert all(tree.error[i] is None for path, _ in tree.rollouts for i in path)
