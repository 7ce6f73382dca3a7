"""One score for a trajectory from its step scores (best-of-N and beam ranking,
`harness scaling`).

A PPM scores every step prefix; ranking whole (or partial) trajectories needs
one number. The paper ranks by the last step's value (the PPM was trained to
score the partial trajectory ending at a step, so the last prefix is the whole
solution); process reward model papers also use the minimum or the product.
All four are available:

- `last`: v_n (the paper's choice, the default);
- `min`:  min_i v_i (one bad step sinks the trajectory);
- `mean`: (1/n) sum_i v_i;
- `prod`: 2 * prod_i (v_i + 1) / 2 - 1, the product of the values read as
  probabilities in [0, 1] ((v + 1) / 2 maps tanh's range onto them), mapped
  back to [-1, 1] so that every aggregate lives on the PPM's own scale.

Values are in [-1, 1] (tanh); so is every aggregate. `path_score` reads a
tree node's path: the priors (PPM values) of its steps, root excluded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from rstar_pl.errors import UserError

if TYPE_CHECKING:
    from rstar_pl.search.tree import Tree

__all__ = ["AGGREGATIONS", "Aggregation", "aggregate", "check_aggregation", "path_score"]

Aggregation = Literal["last", "min", "mean", "prod"]
AGGREGATIONS: tuple[str, ...] = ("last", "min", "mean", "prod")


def check_aggregation(how: str, where: str) -> None:
    """Refuse an unknown rule, naming the setting (`where`) and the allowed ones."""
    if how not in AGGREGATIONS:
        raise UserError(f"{where} is {how!r}; allowed: {', '.join(AGGREGATIONS)}")


def path_score(tree: Tree, node: int, how: str) -> float:
    """`aggregate` of the PPM values of the steps from the root to `node`; 0 when
    a step has none (no scorer: the ranking keeps sampling order)."""
    values = [tree.prior[i] for i in tree.path(node)[1:]]
    if not values or any(v is None for v in values):
        return 0.0
    return aggregate(values, how)


def aggregate(values: Sequence[float], how: str = "last") -> float:
    """The trajectory score of step scores `values` (in path order) by rule `how`."""
    if not values:
        raise ValueError("aggregate: a trajectory needs at least one step score")
    if how == "last":
        return float(values[-1])
    if how == "min":
        return float(min(values))
    if how == "mean":
        return float(sum(values) / len(values))
    if how == "prod":
        return 2.0 * math.prod((float(v) + 1.0) / 2.0 for v in values) - 1.0
    raise UserError(f"unknown step-score aggregation {how!r}; allowed: {', '.join(AGGREGATIONS)}")
