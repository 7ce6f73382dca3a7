r"""Sets of real numbers in one canonical form, so that unions compare as the sets they are.

``(0,1]\cup(1,2)`` is ``(0,2)``, ``\{1\}\cup\{2\}`` is ``\{1,2\}``, ``(1,2)\cup\{2\}`` is
``(1,2]`` and ``(-\infty,0)\cup[0,\infty)`` is the real line, although no element of one matches
an element of the other. `real_set` turns a tree (`structure.Node`: a union, a list of
intervals and points, one interval) into sorted disjoint components ``(low, low_closed, high,
high_closed)``, merging those that overlap or touch at a closed end, when every endpoint has an
exact real value; otherwise it returns None and the trees are compared element by element.
A bracket read as an interval must have its low end below its high end (``(2,0)`` is a pair,
not an empty interval), so two different pairs are never both "empty" and so equal, and may
not close on an infinite end (``[-\infty,0)`` is compared as written).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

from rstar_pl.grading.structure import UNION, Node

__all__ = ["real_set", "involves_union"]

Value = Fraction | float  # float only for -inf and inf
Component = tuple[Value, bool, Value, bool]
_INFINITY = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf}


def involves_union(node: Node) -> bool:
    """Whether ``node`` is a union of sets (where element-wise matching would be wrong)."""
    return node.kind == "unordered" and node.open == UNION


def _point(node: Node, value: Callable[[str], Fraction | None]) -> Value | None:
    if node.kind != "scalar":
        return None
    if node.text in _INFINITY:
        return _INFINITY[node.text]
    return value(node.text)


def _components(node: Node, value, depth: int = 0) -> list[Component] | None:
    if depth > 4:
        return None
    if node.kind == "unordered":
        found: list[Component] = []
        for item in node.items:
            part = _components(item, value, depth + 1)
            if part is None:
                return None
            found.extend(part)
        return found
    if node.kind == "bracket" and len(node.items) == 2 and not node.names:
        lo, hi = (_point(item, value) for item in node.items)
        if lo is None or hi is None or not lo < hi:
            return None
        if node.open not in "([" or node.close not in ")]":
            return None
        lo_closed, hi_closed = node.open == "[", node.close == "]"
        if (lo_closed and lo == -math.inf) or (hi_closed and hi == math.inf):
            return None  # [-\infty, 0) is no interval: compared as written
        return [(lo, lo_closed, hi, hi_closed)]
    v = _point(node, value)
    if v is None or v in (math.inf, -math.inf):
        return None
    return [(v, True, v, True)]


def real_set(node: Node, value: Callable[[str], Fraction | None]) -> tuple[Component, ...] | None:
    """The canonical components of the real set ``node`` denotes (see the module docstring),
    given the exact value of a scalar (None if it has none); None if it is not such a set."""
    parts = _components(node, value)
    if parts is None:
        return None
    parts.sort(key=lambda c: (c[0], not c[1]))
    merged: list[Component] = []
    for lo, lo_closed, hi, hi_closed in parts:
        if merged:
            mlo, mlo_closed, mhi, mhi_closed = merged[-1]
            if lo < mhi or (lo == mhi and (mhi_closed or lo_closed)):
                if hi > mhi or (hi == mhi and hi_closed):
                    merged[-1] = (mlo, mlo_closed, hi, hi_closed or (hi == mhi and mhi_closed))
                continue
        merged.append((lo, lo_closed, hi, hi_closed))
    return tuple(merged)
