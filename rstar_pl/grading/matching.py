r"""Comparing two answer trees (`structure.Node`) element by element, in three-valued logic.

`compare_structures` returns True, False, or None ("not known yet"): the scalar judge it is
given answers None for a pair that only the symbolic worker can settle, after queueing it, so
that one pass over the trees gathers every such pair a verdict may depend on, the worker
settles them in one batch, and a second pass decides. ``and``/``or`` follow Kleene's rules:
a False element makes a tuple False at once, a True candidate covers an element at once.

Conventions (tested in tests/grading_cases.py):

- unordered collections (bare lists, ``\{...\}``, unions) are *sets*: equal when every element
  of each has an equal element in the other, so repeats do not count (``\{1,1,2\}`` is
  ``\{1,2\}``; ``3, 3`` is ``3``). A bare list is unordered because the references that list
  several values (MATH's "enter all solutions, separated by commas") mean a set, and
  math-verify reads them as one; an answer whose order matters is written as a tuple;
- brackets (tuples, intervals) are ordered and keep their bracket characters; a tuple equals a
  one-row or one-column matrix with the same entries;
- names: a named tuple ``(p,q)=(3,2)`` equals ``(3,2)`` (values in order), ``p=3, q=2`` and
  ``q=2, p=3`` (values by name), and ``(q,p)=(2,3)``, but not ``(a,b)=(3,2)``; a list of
  assignments to distinct names against a plain tuple is read in the order written
  (``a=2, b=3`` is ``(2,3)``).
"""

from __future__ import annotations

from collections.abc import Callable

from rstar_pl.grading.structure import Node, split_top_level

__all__ = ["compare_structures"]

Verdict = bool | None
Judge = Callable[[str, str], Verdict]


def _all(verdicts) -> Verdict:
    """Kleene's and, stopping at the first False."""
    unknown = False
    for v in verdicts:
        if v is False:
            return False
        unknown |= v is None
    return None if unknown else True


def _any(verdicts) -> Verdict:
    """Kleene's or, stopping at the first True."""
    unknown = False
    for v in verdicts:
        if v is True:
            return True
        unknown |= v is None
    return None if unknown else False


def _assignment(node: Node) -> tuple[str, Node] | None:
    """(name, value) of a scalar ``x=3`` with a simple name on the left."""
    if node.kind != "scalar" or "=" not in node.text:
        return None
    parts = [p.strip() for p in split_top_level(node.text, "=")]
    if len(parts) != 2:
        return None
    name, value = parts
    if not name or not value or not (name[0].isalpha() or name.startswith("\\")) or len(name) > 12:
        return None
    if any(c in name for c in "(){}[]^+-*/,") and "_" not in name:
        return None
    return name, Node("scalar", value)


def _record(node: Node) -> tuple[tuple[str, ...], tuple[Node, ...]] | None:
    """Names and values of a named tuple or of a list of assignments to distinct names."""
    if node.kind == "bracket" and node.names:
        return node.names, node.items
    if node.kind == "unordered" and len(node.items) > 1 and not node.open:
        pairs = [_assignment(item) for item in node.items]
        if all(pairs) and len({name for name, _ in pairs}) == len(pairs):
            return tuple(name for name, _ in pairs), tuple(value for _, value in pairs)
    return None


def _compare_records(a: Node, b: Node, judge: Judge) -> Verdict | str:
    """The verdict when a record (see `_record`) is involved, or "no" when none is."""
    ra, rb = _record(a), _record(b)
    if ra is None and rb is None:
        return "no"
    if ra is not None and rb is not None:
        if set(ra[0]) != set(rb[0]) or len(ra[0]) != len(rb[0]):
            return False
        by_name = dict(zip(*rb, strict=True))
        return _all(compare_structures(x, by_name[n], judge) for n, x in zip(*ra, strict=True))
    record, other = (ra, b) if ra is not None else (rb, a)
    if other.kind == "bracket" and other.open == "(" and len(other.items) == len(record[1]):
        pairs = (
            zip(record[1], other.items, strict=True)
            if ra is not None
            else zip(other.items, record[1], strict=True)
        )
        return _all(compare_structures(x, y, judge) for x, y in pairs)
    return "no"  # against a plain list or a scalar, the values compare as usual


def _covers(xs: tuple[Node, ...], ys: tuple[Node, ...], edge) -> Verdict:
    """Whether every x has an equal y and every y an equal x."""
    rows = _all(_any(edge(i, j) for j in range(len(ys))) for i in range(len(xs)))
    if rows is False:
        return False
    cols = _all(_any(edge(i, j) for i in range(len(xs))) for j in range(len(ys)))
    return _all((rows, cols))


def compare_structures(a: Node, b: Node, judge: Judge) -> Verdict:
    """Whether trees ``a`` (prediction) and ``b`` (reference) denote the same answer, given a
    judge for pairs of scalars (called as ``judge(pred, gold)``); None while a pair it depends
    on is still undecided."""
    if a.kind == "scalar" and b.kind == "scalar":
        return judge(a.text, b.text)
    named = _compare_records(a, b, judge)
    if named != "no":
        return named
    if a.kind == "unordered" or b.kind == "unordered":
        xs = a.items if a.kind == "unordered" else (a,)
        ys = b.items if b.kind == "unordered" else (b,)
        if not xs or not ys:
            return not xs and not ys
        if len(xs) == 1 and len(ys) == 1:
            return compare_structures(xs[0], ys[0], judge)
        memo: dict[tuple[int, int], Verdict] = {}

        def edge(i: int, j: int) -> Verdict:
            if (i, j) not in memo:
                memo[(i, j)] = compare_structures(xs[i], ys[j], judge)
            return memo[(i, j)]

        return _covers(xs, ys, edge)
    if a.kind == "bracket" and b.kind == "bracket":
        if (a.open, a.close) != (b.open, b.close) or len(a.items) != len(b.items):
            return False
        return _all(compare_structures(x, y, judge) for x, y in zip(a.items, b.items, strict=True))
    if a.kind == "matrix" and b.kind == "matrix":
        if a.shape != b.shape:
            return False
        return _all(compare_structures(x, y, judge) for x, y in zip(a.items, b.items, strict=True))
    # A vector written as a one-row or one-column matrix and as a tuple.
    for m, t in ((a, b), (b, a)):
        if m.kind == "matrix" and t.kind == "bracket" and 1 in m.shape:
            if len(m.items) == len(t.items) and (t.open, t.close) in (("(", ")"), ("[", "]")):
                return _all(
                    compare_structures(x, y, judge) for x, y in zip(a.items, b.items, strict=True)
                )
    return False
