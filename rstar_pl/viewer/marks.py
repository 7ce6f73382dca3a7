"""Which nodes of a problem's trees the training data uses, by node id.

`rstar_pl.data.extraction` writes texts (a response for SFT, a prompt plus a step for a
pair), which is what training needs. The viewer wants the same choices as node
ids, so it runs the extractor itself on the problem's trees and finds, for each
text, the node whose context is that text: a node's context is
`build_prompt(question) + tree.response(node)`, and extract's `prompt +
chosen` (or `+ rejected`) and `build_prompt(question) + response` are contexts
by construction. Reusing extract (rather than re-deriving its rules here) keeps
one definition of what an SFT pick or a pair is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rstar_pl.search.tree import Tree
from rstar_pl.steps import build_prompt

__all__ = ["Marks", "PairMark", "training_marks"]


@dataclass(frozen=True)
class PairMark:
    """One preference pair as nodes: (tree index, node id) of each side."""

    kind: str
    chosen: tuple[int, int]
    rejected: tuple[int, int]
    chosen_q: float
    rejected_q: float


@dataclass
class Marks:
    """The SFT picks (rank, tree index, terminal node) and the pairs of a problem."""

    sft: list[tuple[int, int, int]] = field(default_factory=list)
    pairs: list[PairMark] = field(default_factory=list)
    unmatched: int = 0
    """Records whose text matched no node (should be 0; counted, never hidden)."""


def _contexts(trees: Sequence[Tree]) -> dict[str, tuple[int, int]]:
    """context text -> (tree index, node); the first node wins for equal texts."""
    found: dict[str, tuple[int, int]] = {}
    for t, tree in enumerate(trees):
        base = build_prompt(tree.question)
        for node in range(1, len(tree)):
            found.setdefault(base + tree.response(node), (t, node))
    return found


def training_marks(trees: Sequence[Tree], config=None) -> Marks:
    """Run `rstar_pl.data.extraction.extract` on one problem's trees and map its records to nodes.

    `config` is an `rstar_pl.data.extraction.ExtractConfig` (default: extract's defaults).
    """
    from rstar_pl.data.extraction import ExtractConfig, extract

    if not trees:
        return Marks()
    data = extract(list(trees), config if config is not None else ExtractConfig())
    where = _contexts(trees)
    base = build_prompt(trees[0].question)
    marks = Marks()
    for rank, record in enumerate(data["sft"], start=1):
        hit = where.get(base + record["response"])
        if hit is None:
            marks.unmatched += 1
            continue
        marks.sft.append((rank, *hit))
    for record in data["pairs"]:
        chosen = where.get(record["prompt"] + record["chosen"])
        rejected = where.get(record["prompt"] + record["rejected"])
        if chosen is None or rejected is None:
            marks.unmatched += 1
            continue
        marks.pairs.append(
            PairMark(
                record["kind"],
                chosen,
                rejected,
                float(record["chosen_q"]),
                float(record["rejected_q"]),
            )
        )
    return marks
