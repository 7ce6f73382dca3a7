"""The one lock-step loop that MCTS, beam search and best-of-N all run.

A strategy keeps, per tree, the *leads* it is extending: a lead is one path's
end, the node to expand next. Each iteration of `run_lockstep` is one depth
level for the whole batch: it collects the leads of every unfinished tree,
expands them all in **one** `expand` call (one backend call, one sandbox call,
one scorer call), and hands each lead's outcome back to the strategy:

- `grown(lead, children)`: the node got valid children (errors left out);
- `retry(lead)`: none of its samples is a valid step, and fewer than
  `errors_threshold` expansions of it in a row have failed: the lead (with its
  failure count raised) is expanded again at the next level, with new seeds;
- `ended(lead)`: `errors_threshold` expansions in a row failed; a node left
  without any valid child is now terminal ("no valid child",
  `Tree.end_without_valid_child`).

So `errors_threshold` counts consecutive failed attempts at the end of a path
(2 in round 1, 1 later), and the rule lives here once for every strategy.

A tree is finished when its strategy has no lead left for it (`leads` returns
[]); `on_tree_done` is called with it at once.

Seeds: a lead's samples are seeded from the tree seed and the node id (and,
for a retry or for one of several paths at the same node, the failure count and
the path's `chain`), so a tree never depends on the batch it runs in; the call
seed, for backends with one seed per call, comes from `seed_parts` and the level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from rstar_pl.search.expand import Expansion, SearchEnv, expand
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.tree import Tree

__all__ = ["Lead", "Strategy", "run_lockstep"]


@dataclass(frozen=True, slots=True)
class Lead:
    """One path being extended.

    Attributes:
        tree: index of its tree in the batch.
        node: the node to expand.
        failures: expansions of `node` in a row that gave no valid child.
        chain: which of several paths through the same node this is (best-of-N's
            independent chains share the root); 0 otherwise.
    """

    tree: int
    node: int
    failures: int = 0
    chain: int = 0

    def seed(self, tree: Tree) -> int:
        if self.failures == 0 and self.chain == 0:
            return derive_seed(tree.seed, self.node)
        return derive_seed(tree.seed, self.node, self.chain, self.failures)


class Strategy(Protocol):
    """What a search strategy tells the driver and hears back from it."""

    def leads(self, tree: int) -> list[Lead]:
        """The leads of tree `tree` to expand at this level; [] when it is finished."""
        ...

    def grown(self, lead: Lead, children: list[int]) -> None:
        """`lead.node` got these valid children (at least one)."""
        ...

    def retry(self, lead: Lead) -> None:
        """`lead.node` got no valid child; expand `lead` (failures raised) again."""
        ...

    def ended(self, lead: Lead) -> None:
        """`lead.node` failed `errors_threshold` times in a row; the path ends."""
        ...


def run_lockstep(
    trees: Sequence[Tree],
    env: SearchEnv,
    strategy: Strategy,
    expansion: Expansion,
    *,
    errors_threshold: int,
    seed_parts: tuple[object, ...],
    on_tree_done: Callable[[Tree], None] | None = None,
) -> int:
    """Advance every tree one level per iteration until no tree has a lead left;
    return the number of levels (= backend calls)."""
    per_prompt = getattr(env.backend, "per_prompt_seeds", True)
    finished = [False] * len(trees)
    level = 0
    while True:
        leads: list[Lead] = []
        for i, tree in enumerate(trees):
            if finished[i]:
                continue
            mine = strategy.leads(i)
            if not mine:
                finished[i] = True
                if on_tree_done is not None:
                    on_tree_done(tree)
            leads.extend(mine)
        if not leads:
            return level
        requests = [(trees[lead.tree], lead.node) for lead in leads]
        seeds: int | list[int] = (
            [lead.seed(trees[lead.tree]) for lead in leads]
            if per_prompt
            else derive_seed(*seed_parts, "level", level)
        )
        children = expand(requests, env, expansion, seeds=seeds)
        level += 1
        for lead, kids in zip(leads, children):
            tree = trees[lead.tree]
            valid = [k for k in kids if tree.error[k] is None]
            if valid:
                strategy.grown(lead, valid)
            elif lead.failures + 1 < errors_threshold:
                strategy.retry(replace(lead, failures=lead.failures + 1))
            else:
                if not any(tree.error[c] is None for c in tree.children[lead.node]):
                    tree.end_without_valid_child(lead.node)
                strategy.ended(lead)
