"""Monte Carlo Tree Search over code-augmented steps, many trees in lock-step.

One rollout: select from the root by UCT down to a leaf; if the leaf is
terminal, back up its reward; otherwise expand it (n samples), step to the
best child by UCT (the first new child, or the highest prior with a PPM), and
repeat from there until a terminal is reached, whose reward is backed up along
the path. Every tree of a batch advances one expansion per iteration, so each
iteration is one backend call (and one sandbox call, one scorer call) for the
whole batch.

    UCT(child) = Q(child) + c * sqrt(ln N(parent) / N(child))

Unvisited children (N = 0, no prior) are tried first, in the order they were
sampled. With a PPM prior every child starts with one pseudo-visit (see
`tree.py`), so the prior itself ranks new children.

Annotation: "terminal" (rounds 1-2) backs up +1/-1 only; "ppm" (rounds 3-4 and
test time) also starts each new node's Q at the scorer's value. Without a
reference answer (test time) a terminal's reward is its PPM score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rstar_pl.search.expand import Sampling, SearchEnv, expand
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.tree import ROOT, Tree
from rstar_pl.steps import build_prompt

__all__ = ["MCTSConfig", "SearchProblem", "new_tree", "run_mcts", "select_child", "select_leaf"]


class SearchProblem(Protocol):
    """What search needs of a problem (`problems.Problem` fits)."""

    id: str
    question: str
    answer: str | None


@dataclass
class MCTSConfig:
    """Settings of one MCTS run (reference defaults in parentheses)."""

    rollouts: int = 16
    """Rollouts per tree (8 in round 1 of the paper, 16 later)."""
    n: int = 12
    """Samples per expansion (12 for training data, 32 at evaluation)."""
    c: float = 2.0
    """UCT exploration constant."""
    max_depth: int = 16
    """Depth limit in steps; a node at this depth is terminal."""
    errors_threshold: int = 1
    """Consecutive failed code steps that make a node terminal (2 in round 1)."""
    annotation: Literal["terminal", "ppm"] = "terminal"
    """terminal: +-1 rewards only; ppm: new nodes start at the scorer's value."""
    few_shot: bool = False
    """Round 1's few-shot prompt."""
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**self.sampling)
        for name in ("rollouts", "n", "max_depth", "errors_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name} must be >= 1, got {getattr(self, name)}")
        if self.annotation not in ("terminal", "ppm"):
            raise ValueError(
                f"search.annotation must be 'terminal' or 'ppm', got {self.annotation!r}"
            )


def select_child(tree: Tree, node: int, c: float) -> int:
    """The child of `node` with the highest UCT; the first unvisited child if
    there is one. Ties go to the earlier child."""
    n_parent = tree.visits[node]
    log_n = math.log(n_parent) if n_parent > 1 else 0.0
    best, best_score = -1, -math.inf
    for child in tree.children[node]:
        visits = tree.visits[child]
        if visits == 0:
            return child
        score = tree.value_sum[child] / visits + c * math.sqrt(log_n / visits)
        if score > best_score:
            best, best_score = child, score
    return best


def select_leaf(tree: Tree, c: float) -> int:
    """Descend from the root by UCT to a terminal or unexpanded node."""
    node = ROOT
    while not tree.terminal[node] and tree.children[node]:
        node = select_child(tree, node, c)
    return node


def new_tree(
    problem: SearchProblem,
    seed: int,
    attempt: int,
    few_shot: bool = False,
    use_reference: bool = True,
) -> Tree:
    """An empty tree for `problem`, seeded from the run seed, the problem id and
    the attempt; without `use_reference` the tree does not see the answer."""
    return Tree.new(
        problem.id,
        problem.question,
        problem.answer if use_reference else None,
        build_prompt(problem.question, few_shot=few_shot),
        derive_seed(seed, problem.id, attempt),
        attempt,
    )


def run_mcts(
    problems: Sequence[SearchProblem],
    env: SearchEnv,
    config: MCTSConfig,
    *,
    seed: int,
    attempt: int = 0,
    rollouts: int | None = None,
    on_tree_done: Callable[[Tree], None] | None = None,
    use_reference: bool = True,
) -> list[Tree]:
    """Search every problem's tree in lock-step and return the trees in order.

    Args:
        seed: the run seed; each tree's seed is derived from it, the problem id
            and `attempt`.
        rollouts: overrides `config.rollouts` (the round-4 schedule).
        on_tree_done: called with each tree as soon as it has all its rollouts
            (generation appends it to the tree file right away).
        use_reference: False for evaluation: the trees do not see the problems'
            answers, terminals are rewarded with their PPM score (needs a
            scorer), and the caller grades the returned trajectories itself.
    """
    budget = config.rollouts if rollouts is None else rollouts
    trees = [new_tree(p, seed, attempt, config.few_shot, use_reference) for p in problems]
    for tree in trees:
        tree.meta.update(
            rollouts=budget,
            n=config.n,
            c=config.c,
            annotation=config.annotation,
            max_depth=config.max_depth,
            errors_threshold=config.errors_threshold,
        )
    current: list[int | None] = [None] * len(trees)
    done = [False] * len(trees)
    score = "all" if config.annotation == "ppm" else "none"
    if any(t.reference is None for t in trees):
        score = "all" if config.annotation == "ppm" else "terminal"
    level = 0
    while True:
        requests: list[tuple[int, int]] = []
        for i, tree in enumerate(trees):
            if done[i]:
                continue
            while current[i] is None and len(tree.rollouts) < budget:
                leaf = select_leaf(tree, config.c)
                if tree.terminal[leaf]:
                    tree.backup(leaf, tree.terminal_reward(leaf))
                else:
                    current[i] = leaf
            if current[i] is None:
                done[i] = True
                if on_tree_done is not None:
                    on_tree_done(tree)
            else:
                requests.append((i, current[i]))
        if not requests:
            break
        kids = expand(
            [(trees[i], node) for i, node in requests],
            env,
            n=config.n,
            sampling=config.sampling,
            max_depth=config.max_depth,
            errors_threshold=config.errors_threshold,
            score=score,
            call_seed=derive_seed(seed, attempt, "level", level),
        )
        level += 1
        for (i, node), new in zip(requests, kids):
            tree = trees[i]
            if not new:  # the backend gave nothing: a dead end, scored as wrong
                tree.terminal[node] = True
                tree.correct[node] = False if tree.reference is not None else None
                tree.backup(node, -1.0)
                current[i] = None
                continue
            child = select_child(tree, node, config.c)
            if tree.terminal[child]:
                tree.backup(child, tree.terminal_reward(child))
                current[i] = None
            else:
                current[i] = child
    return trees
