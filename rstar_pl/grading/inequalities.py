r"""Inequalities in one variable as intervals: ``x<1``, ``-x>-1``, ``3-x>1``, ``1<2x\leq 6``.

`interval_from_relation` solves a chain of one or two relations (all pointing the same way)
whose middle, or one side, is linear in one variable (``a x + b`` with exact rational ``a`` and
``b``) and whose other parts are constants. Dividing by a negative ``a`` turns the relation
around, so ``-2x\geq 4`` is ``x\leq -2``, the interval ``(-\infty,-2]``. A constant that is
not a plain number (``\sqrt{2}``) is kept as text when ``a`` is 1 or -1 and ``b`` is 0, and
makes the relation undecided otherwise. Anything else (``x^2<4``, two variables) is not an
interval here; it stays a scalar for the symbolic path.
"""

from __future__ import annotations

import re
from fractions import Fraction

from rstar_pl.grading.arithmetic import evaluate

__all__ = ["RELATION", "interval_from_relation"]

RELATION = re.compile(r"\\leq |\\geq |\\leq(?![A-Za-z])|\\geq(?![A-Za-z])|<|>")
_VARIABLE = (
    r"(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\(?:alpha|beta|gamma|theta|lambda|mu|phi|omega|varphi))"
)
_COEFFICIENT = r"(?:\d+(?:\.\d+)?|\\frac\{\d+\}\{\d+\})"
# One term of a linear form: [sign] [coefficient] variable [/ or \frac denominator], or a number.
_TERM = re.compile(
    rf"(?P<sign>[-+]?)(?:(?P<coef>{_COEFFICIENT})?(?P<var>{_VARIABLE})(?:/(?P<den>\d+))?"
    rf"|\\frac\{{(?P<fvar>{_VARIABLE})\}}\{{(?P<fden>\d+)\}}|(?P<const>{_COEFFICIENT}))"
)
_FLIP = {"<": ">", ">": "<", "\\leq": "\\geq", "\\geq": "\\leq"}


def _linear(text: str) -> tuple[str, Fraction, Fraction] | None:
    """(variable, a, b) when ``text`` is ``a*variable + b`` with a != 0, else None."""
    pos, var, a, b = 0, None, Fraction(0), Fraction(0)
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos or (pos > 0 and not m.group("sign")):
            return None
        sign = -1 if m.group("sign") == "-" else 1
        name = m.group("var") or m.group("fvar")
        if name is None:
            b += sign * _fraction(m.group("const"))
        else:
            if var is not None and name != var:
                return None
            var = name
            coef = _fraction(m.group("coef")) if m.group("coef") else Fraction(1)
            den = m.group("den") or m.group("fden")
            if den is not None:
                if int(den) == 0:
                    return None
                coef /= int(den)
            a += sign * coef
        pos = m.end()
    if var is None or a == 0:
        return None
    return var, a, b


def _fraction(text: str) -> Fraction:
    if text.startswith("\\frac"):
        num, den = re.findall(r"\d+", text)
        return Fraction(int(num), int(den)) if int(den) else Fraction(0)
    return Fraction(text)


def _text(value: Fraction) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value.denominator == 1:
        return f"{sign}{value.numerator}"
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _bound(constant: str, var: str, a: Fraction, b: Fraction) -> str | None:
    """The value of ``var`` at which ``a*var + b`` equals ``constant``, as text."""
    if var in constant or any(c in constant for c in ":;,[]|="):
        return None
    value = evaluate(constant)
    if value is not None:
        if value[1]:
            return None
        return _text((value[0] - b) / a)
    if b == 0 and a == 1:
        return constant
    if b == 0 and a == -1:
        return f"-({constant})"
    return None


def interval_from_relation(cond: str) -> tuple[str, str, str, str] | None:
    """``(open, low, high, close)`` of the interval a one-variable inequality describes, with
    ``-\\infty``/``\\infty`` for a missing side (``x<1`` gives ``("(", "-\\infty", "1", ")")``);
    None when ``cond`` is no such inequality."""
    parts = [p.strip() for p in RELATION.split(cond)]
    ops = [op.strip() for op in RELATION.findall(cond)]
    if len(parts) not in (2, 3) or any(not p for p in parts):
        return None
    if len(set(op in ("<", "\\leq") for op in ops)) != 1:
        return None
    if len(parts) == 3:
        linear = _linear(parts[1])
        if linear is None:
            return None
        var, a, b = linear
        lo, hi = _bound(parts[0], var, a, b), _bound(parts[2], var, a, b)
        if lo is None or hi is None:
            return None
        if a < 0:  # c1 < a x + b < c2, a < 0:  lo > x > hi
            ops = [_FLIP[op] for op in ops]
        if ops[0] in (">", "\\geq"):  # 3 > x > 1 is 1 < x < 3
            lo, hi, ops = hi, lo, [_FLIP[op] for op in ops[::-1]]
        return ("[" if ops[0] == "\\leq" else "("), lo, hi, ("]" if ops[1] == "\\leq" else ")")
    op = ops[0]
    left, right = _linear(parts[0]), _linear(parts[1])
    if (left is None) == (right is None):
        return None
    if left is None:  # c < a x + b  is  a x + b > c
        (var, a, b), constant, op = right, parts[0], _FLIP[op]
    else:
        (var, a, b), constant = left, parts[1]
    bound = _bound(constant, var, a, b)
    if bound is None:
        return None
    if a < 0:
        op = _FLIP[op]
    if op in ("<", "\\leq"):
        return "(", "-\\infty", bound, ("]" if op == "\\leq" else ")")
    return ("[" if op == "\\geq" else "("), bound, "\\infty", ")"
