"""Monte Carlo Tree Search over code-augmented steps, many trees in lock-step.

One rollout: select from the root by UCT down to a leaf; if the leaf is
terminal, back up its reward; otherwise expand it (n samples), step to the
best new child by UCT, and repeat from there until a terminal is reached, whose
reward is backed up along the path. All trees of a batch advance one expansion
per level through `lockstep.run_lockstep`, so each level is one backend call
(and one sandbox call, one scorer call) for the whole batch.

    UCT(child) = Q(child) + c * sqrt(ln N(parent) / N(child))

Selection considers only *selectable* children (`Tree.selectable`): an error
child (its program failed) is never chosen, and a closed child (a terminal
some rollout has reached, or a node with nothing left to find) is skipped, so
no rollout re-visits a known answer. A node whose samples all fail is expanded
again up to `errors_threshold` times in a row, then it is terminal ("no valid
child") and the rollout ends there with reward -1 (it gave no answer). When the
root is closed the tree is exhausted and stops early.

First-play value: a child with N = 0 (no rollout, no prior) has no UCT value;
`unvisited` says what it scores instead:

- `inf`: every unvisited child is tried before any visited one (textbook UCT);
  with n samples and few rollouts this grows independent chains from the root;
- `parent_q`: the parent's Q;
- a number: that value (the reference implementation scores unvisited children
  0, so 0 reproduces it).

The default, 1 (the best reward: an untried step is taken to be as good as a
correct one), was chosen by measurement on the scripted round-1 setting (README,
"Measured"): a child whose rollouts reached a correct answer keeps its UCT above
1 and is explored again, so trees share prefixes and yield step pairs below the
first step, while a child that reached only wrong answers gives way to its
untried siblings until `ln N(parent)` outgrows its visits. `inf` grows
independent chains (half the shared prefix, most pairs at depth 1); 0 and
`parent_q` go deeper into wrong prefixes and solve fewer problems.

With a PPM prior every child starts with one pseudo-visit (see `tree.py`), so
the prior itself ranks new children and `unvisited` does not apply.

Annotation: "terminal" (rounds 1-2) backs up +1/-1 only; "ppm" (rounds 3-4 and
test time) also starts each new non-terminal node's Q at the scorer's value,
while a terminal with a reference answer starts from its known outcome (+1/-1).
Without a reference answer (test time) a terminal is scored too, and its reward
is its PPM score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rstar_pl.errors import UserError
from rstar_pl.search.expand import Expansion, Sampling, SearchEnv
from rstar_pl.search.lockstep import Lead, run_lockstep
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.tree import ROOT, Tree
from rstar_pl.steps import build_prompt

__all__ = [
    "FirstPlay",
    "MCTSConfig",
    "first_play",
    "SearchProblem",
    "new_tree",
    "run_mcts",
    "select_child",
    "select_leaf",
]

#: What an unvisited child scores in selection: "inf", "parent_q" or a number.
FirstPlay = float | str


class SearchProblem(Protocol):
    """What search needs of a problem (`rstar_pl.data.problems.Problem` fits)."""

    @property
    def id(self) -> str: ...

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
    """Expansions of a node in a row whose samples all fail before the node is
    terminal ("no valid child"); 2 in round 1."""
    unvisited: FirstPlay = 1.0
    """First-play value of a child no rollout has visited: 'inf' (unvisited
    first), 'parent_q', or a number (the reference's is 0; default 1, measured).
    See the module doc."""
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
                raise UserError(f"search.{name} must be >= 1, got {getattr(self, name)}")
        if self.annotation not in ("terminal", "ppm"):
            raise UserError(
                f"search.annotation must be 'terminal' or 'ppm', got {self.annotation!r}"
            )
        self.unvisited = first_play(self.unvisited)


def first_play(value: FirstPlay) -> float | str:
    """`value` checked: 'parent_q', or a number (inf allowed); 'inf' becomes math.inf."""
    if isinstance(value, str) and value.strip() == "parent_q":
        return "parent_q"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(
            f"search.unvisited must be 'inf', 'parent_q' or a number, got {value!r}"
        ) from None
    if math.isnan(number) or number == -math.inf:
        raise UserError(f"search.unvisited must be 'inf', 'parent_q' or a number, got {value!r}")
    return number


def select_child(tree: Tree, node: int, c: float, unvisited: FirstPlay = math.inf) -> int:
    """The selectable child of `node` with the highest UCT, an unvisited one
    scoring `unvisited` (see the module docstring); -1 when none is selectable.
    Ties go to the earlier child."""
    n_parent = tree.visits[node]
    log_n = math.log(n_parent) if n_parent > 1 else 0.0
    if unvisited == "parent_q":
        fresh = tree.q(node)
    else:
        fresh = unvisited if isinstance(unvisited, float) else first_play(unvisited)
    best, best_score = -1, -math.inf
    for child in tree.children[node]:
        if tree.error[child] is not None or tree.closed[child]:
            continue
        visits = tree.visits[child]
        if visits == 0:
            if fresh == math.inf:
                return child
            score = fresh
        else:
            score = tree.value_sum[child] / visits + c * math.sqrt(log_n / visits)
        if score > best_score:
            best, best_score = child, score
    return best


def select_leaf(tree: Tree, c: float, unvisited: FirstPlay = math.inf) -> int | None:
    """Descend from the root by UCT to a terminal or unexpanded node; None when
    the root is closed (the tree has nothing left to search)."""
    if tree.closed[ROOT]:
        return None
    node = ROOT
    while not tree.terminal[node] and tree.children[node]:
        node = select_child(tree, node, c, unvisited)
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
            # JSON has no infinity: the file says "inf", as the config does
            unvisited="inf" if config.unvisited == math.inf else config.unvisited,
        )
    score = "all" if config.annotation == "ppm" else "none"
    if score == "none" and any(t.reference is None for t in trees):
        score = "terminal"
    expansion = Expansion(
        n=config.n,
        sampling=config.sampling,
        max_depth=config.max_depth,
        score=score,
        known_terminals=config.annotation == "ppm",
    )
    strategy = _Rollouts(trees, config, budget)
    run_lockstep(
        trees,
        env,
        strategy,
        expansion,
        errors_threshold=config.errors_threshold,
        seed_parts=(seed, attempt),
        on_tree_done=on_tree_done,
    )
    return trees


class _Rollouts:
    """MCTS as a lock-step strategy: one rollout in flight per tree (`lockstep.py`)."""

    def __init__(self, trees: list[Tree], config: MCTSConfig, budget: int) -> None:
        self.trees, self.budget = trees, budget
        self.c, self.unvisited = config.c, config.unvisited
        self.current: list[Lead | None] = [None] * len(trees)

    def leads(self, i: int) -> list[Lead]:
        tree = self.trees[i]
        while self.current[i] is None and len(tree.rollouts) < self.budget:
            leaf = select_leaf(tree, self.c, self.unvisited)
            if leaf is None:  # exhausted before the budget
                break
            if tree.terminal[leaf]:
                tree.backup(leaf, tree.terminal_reward(leaf))
            else:
                self.current[i] = Lead(i, leaf)
        lead = self.current[i]
        return [] if lead is None else [lead]

    def grown(self, lead: Lead, children: list[int]) -> None:
        tree = self.trees[lead.tree]
        child = select_child(tree, lead.node, self.c, self.unvisited)
        if tree.terminal[child]:
            tree.backup(child, tree.terminal_reward(child))
            self.current[lead.tree] = None
        else:
            self.current[lead.tree] = Lead(lead.tree, child)

    def retry(self, lead: Lead) -> None:
        self.current[lead.tree] = lead

    def ended(self, lead: Lead) -> None:
        tree = self.trees[lead.tree]
        tree.backup(lead.node, tree.terminal_reward(lead.node))
        self.current[lead.tree] = None
