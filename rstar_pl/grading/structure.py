"""The shape of an answer: one value, or a collection of values to compare element by element.

`parse_structure` turns a canonical answer (see `normalize`) into a small tree of `Node`s:
unordered collections (``1, 2``, ``\\{1,2\\}``, unions of intervals, the two roots of
``1\\pm\\sqrt{5}``), ordered brackets (tuples, intervals, with their bracket characters),
matrices, and scalars at the leaves. Inequalities and set-builder sets with one variable become
intervals (``\\{x|-2\\leq x<1\\}`` is ``[-2,1)``). `compare_structures` matches two trees,
calling back for each pair of scalars, so that every element takes the fast numeric path and
only the rest goes to the symbolic worker. All scanning is iterative; nesting deeper than
`MAX_DEPTH` is left as one scalar.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Node", "parse_structure", "compare_structures", "split_top_level"]

MAX_DEPTH = 8  # nesting of collections inside collections
MAX_ITEMS = 64  # elements of one collection; longer ones are compared as text
MAX_CHARS = 2000  # longer answers are one scalar (compared as text)

_OPEN = {"(": ")", "[": "]", "{": "}"}
_MATRIX = re.compile(
    r"\\begin\{(?P<env>[pbBv]?matrix|array)\}(?:\{[^{}]*\})?(?P<body>.*)\\end\{(?P=env)\}", re.S
)
_RELATION = re.compile(r"\\leq |\\geq |\\leq(?![A-Za-z])|\\geq(?![A-Za-z])|<|>")
_VARIABLE = re.compile(r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+")
_SET_BUILDER = re.compile(
    r"\\\{(?P<var>[^|:{}]{1,20}?)(?:\||\\mid |\\mid(?![A-Za-z])|:)(?P<cond>.*)\\\}"
)


@dataclass(frozen=True)
class Node:
    """``kind`` is "scalar" (``text``), "unordered" (``items``), "bracket" (``items`` between
    ``open`` and ``close``) or "matrix" (``items`` row by row, ``shape``). An unordered node
    with ``open == "\\pm"`` holds the two values of ``a \\pm b``; lists splice them in."""

    kind: str
    text: str = ""
    items: tuple[Node, ...] = ()
    open: str = ""
    close: str = ""
    shape: tuple[int, int] = (0, 0)


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


def _interval_from_relation(cond: str) -> Node | None:
    """``a<x\\leq b``, ``x\\geq a``, ``x<b`` (one variable) as an interval node."""
    parts = _RELATION.split(cond)
    ops = [op.strip() for op in _RELATION.findall(cond)]
    if len(parts) not in (2, 3) or any(not p for p in parts):
        return None
    up = [op in ("<", "\\leq") for op in ops]
    if len(set(up)) != 1:
        return None
    if not up[0]:  # a > x >= b  is  b <= x < a
        parts, ops = parts[::-1], [{">": "<", "\\geq": "\\leq"}[op] for op in ops[::-1]]
    if len(parts) == 2:
        if _VARIABLE.fullmatch(parts[0]):
            lo, lo_op, hi, hi_op = "-\\infty", "<", parts[1], ops[0]
        elif _VARIABLE.fullmatch(parts[1]):
            lo, lo_op, hi, hi_op = parts[0], ops[0], "\\infty", "<"
        else:
            return None
    else:
        if not _VARIABLE.fullmatch(parts[1]):
            return None
        lo, lo_op, hi, hi_op = parts[0], ops[0], parts[2], ops[1]
    return Node(
        "bracket",
        items=(Node("scalar", lo), Node("scalar", hi)),
        open="[" if lo_op == "\\leq" else "(",
        close="]" if hi_op == "\\leq" else ")",
    )


def _unordered(parts: list[str], depth: int) -> Node:
    items: list[Node] = []
    for p in parts:
        node = parse_structure(p, depth + 1)
        items.extend(node.items if node.kind == "unordered" and node.open == "\\pm" else (node,))
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
    if "\\begin" in s and (node := _matrix(s, depth)) is not None:
        return node
    parts = _split_word(s, "\\cup")
    if len(parts) > 1 and len(parts) <= MAX_ITEMS:
        return Node("unordered", items=tuple(parse_structure(p, depth + 1) for p in parts))
    parts = split_top_level(s)
    if len(parts) > 1 and len(parts) <= MAX_ITEMS:
        return _unordered(parts, depth)
    if m := _SET_BUILDER.fullmatch(s):
        node = _interval_from_relation(m.group("cond"))
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
    if _RELATION.search(s) and "=" not in s:
        node = _interval_from_relation(s)
        if node is not None:
            return node
    if s.count("\\pm") == 1:  # the two values of a +- b, spliced into an enclosing list
        return Node(
            "unordered",
            items=(Node("scalar", s.replace("\\pm", "+")), Node("scalar", s.replace("\\pm", "-"))),
            open="\\pm",
        )
    return Node("scalar", s)


def _perfect_matching(n: int, edge: Callable[[int, int], bool]) -> bool:
    """Whether an n x n bipartite graph has a perfect matching (Kuhn's augmenting paths;
    recursion depth at most n, which `MAX_ITEMS` bounds)."""
    match_of = [-1] * n  # right vertex -> left vertex

    def augment(u: int, seen: list[bool]) -> bool:
        for v in range(n):
            if not seen[v] and edge(u, v):
                seen[v] = True
                if match_of[v] == -1 or augment(match_of[v], seen):
                    match_of[v] = u
                    return True
        return False

    return all(augment(u, [False] * n) for u in range(n))


def compare_structures(a: Node, b: Node, scalars_equal: Callable[[str, str], bool]) -> bool:
    """Whether trees ``a`` (prediction) and ``b`` (reference) denote the same answer, given a
    judge for pairs of scalars (called as ``scalars_equal(pred, gold)``)."""
    if a.kind == "scalar" and b.kind == "scalar":
        return scalars_equal(a.text, b.text)
    if a.kind == "unordered" or b.kind == "unordered":
        xs = a.items if a.kind == "unordered" else (a,)
        ys = b.items if b.kind == "unordered" else (b,)
        if len(xs) != len(ys):
            return False
        if len(xs) == 1:
            return compare_structures(xs[0], ys[0], scalars_equal)
        memo: dict[tuple[int, int], bool] = {}

        def edge(i: int, j: int) -> bool:
            if (i, j) not in memo:
                memo[(i, j)] = compare_structures(xs[i], ys[j], scalars_equal)
            return memo[(i, j)]

        return _perfect_matching(len(xs), edge)
    if a.kind == "bracket" and b.kind == "bracket":
        if (a.open, a.close) != (b.open, b.close) or len(a.items) != len(b.items):
            return False
        return all(
            compare_structures(x, y, scalars_equal) for x, y in zip(a.items, b.items, strict=True)
        )
    if a.kind == "matrix" and b.kind == "matrix":
        if a.shape != b.shape:
            return False
        return all(
            compare_structures(x, y, scalars_equal) for x, y in zip(a.items, b.items, strict=True)
        )
    # A vector written as a one-row or one-column matrix and as a tuple.
    for m, t in ((a, b), (b, a)):
        if m.kind == "matrix" and t.kind == "bracket" and 1 in m.shape and t.open in "([":
            if len(m.items) == len(t.items) and (t.open, t.close) in (("(", ")"), ("[", "]")):
                return all(
                    compare_structures(x, y, scalars_equal)
                    for x, y in zip(a.items, b.items, strict=True)
                )
    return False
