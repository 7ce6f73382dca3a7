"""The shape of an answer: one value, or a collection of values to compare element by element.

`parse_structure` turns a canonical answer (see `normalize`) into a small tree of `Node`s:
unordered collections (``1, 2``, ``\\{1,2\\}``, the empty set, the two roots of
``1\\pm\\sqrt{5}``), unions (``A\\cup B``), ordered brackets (tuples, intervals, with their
bracket characters; a named tuple ``(p,q)=(3,2)`` keeps its names), matrices, and scalars at the
leaves. Inequalities and set-builder sets with one variable become intervals
(`inequalities`: ``\\{x|-2\\leq x<1\\}`` is ``[-2,1)``, ``-x>-1`` is ``(-\\infty,1)``).
`matching.compare_structures` then compares two trees. All scanning is iterative; nesting
deeper than `MAX_DEPTH` is left as one scalar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rstar_pl.grading.inequalities import RELATION, interval_from_relation

__all__ = ["Node", "parse_structure", "split_top_level", "UNION", "PLUS_MINUS"]

MAX_DEPTH = 8  # nesting of collections inside collections
MAX_ITEMS = 64  # elements of one collection; longer ones are compared as text
MAX_CHARS = 2000  # longer answers are one scalar (compared as text)

UNION = "\\cup"  # `Node.open` of a union
PLUS_MINUS = "\\pm"  # `Node.open` of the two values of a +- b
_MATRIX = re.compile(
    r"\\begin\{(?P<env>[pbBv]?matrix|array)\}(?:\{[^{}]*\})?(?P<body>.*)\\end\{(?P=env)\}", re.S
)
_VARIABLE = re.compile(r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+")
_SET_BUILDER = re.compile(
    r"\\\{(?P<var>[^|:{}]{1,20}?)(?:\||\\mid |\\mid(?![A-Za-z])|:)(?P<cond>.*)\\\}"
)


@dataclass(frozen=True)
class Node:
    """``kind`` is "scalar" (``text``), "unordered" (``items``), "bracket" (``items`` between
    ``open`` and ``close``, and the ``names`` of a named tuple) or "matrix" (``items`` row by
    row, ``shape``). An unordered node with ``open == UNION`` is a union of sets; with
    ``open == PLUS_MINUS`` it holds the two values of ``a \\pm b``, which lists splice in. The
    empty set is an unordered node without items."""

    kind: str
    text: str = ""
    items: tuple[Node, ...] = ()
    open: str = ""
    close: str = ""
    shape: tuple[int, int] = (0, 0)
    names: tuple[str, ...] = ()


def _scan(s: str):
    """Yield (index, char, depth before the char) over ``s``; ``\\{``/``\\}`` count as brackets
    and other escaped characters are skipped."""
    depth = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            nxt = s[i + 1]
            if nxt == "{":
                yield i, "\\{", depth
                depth += 1
            elif nxt == "}":
                depth = max(depth - 1, 0)
                yield i, "\\}", depth
            else:
                yield i, "\\", depth
            i += 2
            continue
        if c in "([{":
            yield i, c, depth
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
            yield i, c, depth
        else:
            yield i, c, depth
        i += 1


def split_top_level(s: str, seps: str = ",;") -> list[str]:
    """``s`` split at separators outside every bracket and brace."""
    if not any(sep in s for sep in seps):
        return [s]
    parts, start = [], 0
    for i, c, depth in _scan(s):
        if depth == 0 and c in seps and len(c) == 1:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _split_word(s: str, word: str) -> list[str]:
    """``s`` split at a control word (like ``\\cup``) outside every bracket."""
    if word not in s:
        return [s]
    parts, start = [], 0
    depth_at = {i: depth for i, _, depth in _scan(s)}
    for m in re.finditer(re.escape(word) + r"(?![A-Za-z])", s):
        if depth_at.get(m.start(), 1) == 0:
            parts.append(s[start : m.start()])
            start = m.end()
    parts.append(s[start:])
    return parts


def _wrapped(s: str) -> tuple[str, str] | None:
    """The outer bracket pair when one pair encloses all of ``s``: ('(', ']') for ``(0,1]``."""
    if len(s) < 2:
        return None
    if s.startswith("\\{") and s.endswith("\\}"):
        first = "\\{"
    elif s[0] in "([":
        first = s[0]
    else:
        return None
    for i, c, depth in _scan(s):
        if i > 0 and depth == 0 and c in (")", "]", "\\}"):
            end = i + len(c)
            return (first, c) if end == len(s) else None
    return None


def _unordered(parts: list[str], depth: int) -> Node:
    items: list[Node] = []
    for p in parts:
        node = parse_structure(p, depth + 1)
        items.extend(
            node.items if node.kind == "unordered" and node.open == PLUS_MINUS else (node,)
        )
    return Node("unordered", items=tuple(items))


def _matrix(s: str, depth: int) -> Node | None:
    m = _MATRIX.fullmatch(s)
    if not m or m.group("env") == "vmatrix":  # vmatrix is a determinant: a scalar
        return None
    rows = [r for r in (row.strip() for row in m.group("body").split("\\\\")) if r]
    cells = [[parse_structure(c.strip(), depth + 1) for c in split_top_level(r, "&")] for r in rows]
    if not cells or len({len(r) for r in cells}) != 1:
        return None
    return Node(
        "matrix", items=tuple(c for r in cells for c in r), shape=(len(cells), len(cells[0]))
    )


def parse_structure(s: str, depth: int = 0) -> Node:
    """The tree of a canonical answer string (see the module docstring)."""
    s = s.strip()
    if depth > MAX_DEPTH or not s or len(s) > MAX_CHARS:
        return Node("scalar", s)
    if s == "\\emptyset":
        return Node("unordered")
    if "\\begin" in s and (node := _matrix(s, depth)) is not None:
        return node
    parts = _split_word(s, UNION)
    if len(parts) > 1 and len(parts) <= MAX_ITEMS:
        items = tuple(parse_structure(p, depth + 1) for p in parts)
        return Node("unordered", items=items, open=UNION)
    parts = split_top_level(s)
    if len(parts) > 1 and len(parts) <= MAX_ITEMS:
        return _unordered(parts, depth)
    if "=" in s and (node := _named_tuple(s, depth)) is not None:
        return node
    if m := _SET_BUILDER.fullmatch(s):
        node = _interval(m.group("cond"))
        if node is not None:
            return node
    wrap = _wrapped(s)
    if wrap is not None:
        first, last = wrap
        inner = s[len(first) : len(s) - len(last)]
        if first == "\\{":
            items = [p for p in split_top_level(inner) if p.strip()]
            if len(items) <= MAX_ITEMS:
                return _unordered(items, depth)
        else:
            items = split_top_level(inner)
            if len(items) == 1 and (first + last == "()" or inner.startswith("\\begin")):
                return parse_structure(inner, depth + 1)  # (x+1), or [\begin{array}...]
            if len(items) > 1 and len(items) <= MAX_ITEMS:
                return Node(
                    "bracket",
                    items=tuple(parse_structure(p, depth + 1) for p in items),
                    open=first,
                    close=last,
                )
    if RELATION.search(s) and "=" not in s:
        node = _interval(s)
        if node is not None:
            return node
    if s.count(PLUS_MINUS) == 1:  # the two values of a +- b, spliced into an enclosing list
        return Node(
            "unordered",
            items=(
                Node("scalar", s.replace(PLUS_MINUS, "+")),
                Node("scalar", s.replace(PLUS_MINUS, "-")),
            ),
            open=PLUS_MINUS,
        )
    return Node("scalar", s)


def _interval(relation: str) -> Node | None:
    found = interval_from_relation(relation)
    if found is None:
        return None
    open_, lo, hi, close = found
    return Node("bracket", items=(Node("scalar", lo), Node("scalar", hi)), open=open_, close=close)


def _named_tuple(s: str, depth: int) -> Node | None:
    """``(p,q)=(3,2)``: the tuple (3,2) with the names p, q; None for anything else."""
    parts = split_top_level(s, "=")
    if len(parts) != 2 or _wrapped(parts[0]) != ("(", ")"):
        return None
    names = [n.strip() for n in split_top_level(parts[0][1:-1])]
    value = parse_structure(parts[1], depth + 1)
    if (
        len(names) < 2
        or not all(_VARIABLE.fullmatch(n) for n in names)
        or len(set(names)) != len(names)
        or value.kind != "bracket"
        or len(value.items) != len(names)
    ):
        return None
    return Node(
        "bracket", items=value.items, open=value.open, close=value.close, names=tuple(names)
    )
