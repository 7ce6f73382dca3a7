r"""Checks on sympy expressions that math-verify's `verify` does not make; worker-side only.

Loaded by `_worker.py` by path (it imports sympy, which the caller's process never needs):

- `same_number`: two expressions without variables compare by value, relative to their size.
  math-verify evaluates ``a - b`` to 15 digits and chops what is small in absolute terms, so
  ``1/2^{98}`` equalled ``1/2^{99}`` and ``e^{-100}`` equalled ``2e^{-100}``. Here the
  difference of two exact inputs is evaluated with up to `MAX_DIGITS` digits of working
  precision: it must vanish to within 1e-480 of their size (sympy reports an exact zero as a
  value with no significant digit left at that precision), so ``10^{100}\sqrt{2}+1`` is not
  ``10^{100}\sqrt{2}``. Such a vanishing proves nothing for values beyond 10^{+-300}
  (``10^{10^{10}}+1`` against ``10^{10^{10}}``): there only a difference sympy cancels
  exactly counts, and the pair is otherwise undecided. An input with a decimal in it (a sympy
  Float, 15 digits) must agree to 1e-12.
- `refuted`: an equal verdict on expressions with variables must survive evaluation at sample
  points; it is refuted when the two sides differ at every sample set where both evaluate
  (integers, so that identities that hold for integers only stand, and two sets of fractions).
- `same_solutions`: an equation in one variable against values or assignments (``x^2=4``
  against ``x=\\pm 2``, ``3x+1=7`` against ``2``) compares its solution set.
- `same_equation`: two equations are the same when one is a constant multiple of the other
  (checked at sample points) or, in one variable, when they have the same solutions; this
  replaces math-verify's test, which solves over the reals and so calls ``x^2-2x+10=0`` and
  ``x^2-2x+10=5`` (no real roots either) equal, and ``\\gcd(m+1,n)=1`` and ``=6`` too.
- `is_statement`: an equation without variables parses to sympy's ``true`` or ``false``
  (``\\log_{36}(36)=1``); two such are not compared by their truth value.

``i`` is read as the imaginary unit in an expression without other variables (latex2sympy
reads it as a symbol).
"""

from __future__ import annotations

from sympy import Eq, Expr, FiniteSet, Float, I, Rational, Symbol, Tuple, simplify, solve
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom

__all__ = [
    "DIGITS",
    "as_number",
    "same_number",
    "refuted",
    "same_equation",
    "same_solutions",
    "is_statement",
]

DIGITS = 60
MAX_DIGITS = 500  # working precision for the difference of two exact numbers
_EXACT_TOLERANCE = Float(f"1e-{MAX_DIGITS - 20}", 30)
_FLOAT_TOLERANCE = Float("1e-12", DIGITS)
_MIN_SIZE, _MAX_SIZE = Float("1e-600", 30), Float("1e600", 30)  # squared magnitudes
_SAMPLES = (
    [2, 3, 5, 7, 11, 13],
    [Rational(p, 7) for p in (11, 13, 17, 19, 23, 29)],
    [Rational(p, 11) for p in (31, 37, 41, 43, 47, 53)],
)


def as_number(expr) -> Expr | None:
    """``expr`` as a number (``i`` read as the imaginary unit), or None when it has variables
    or is not an expression (a set, a relation, a matrix)."""
    if not isinstance(expr, Expr):
        return None
    symbols = expr.free_symbols
    if any(s.name != "i" for s in symbols):
        return None
    if symbols:  # latex2sympy's i, with or without assumptions
        expr = expr.subs({s: I for s in symbols})
    return expr if expr.is_number else None


def _value(expr: Expr, digits: int = DIGITS, maxn: int = 100):
    """The complex value of a number to ``digits`` digits, or None if it has no finite one."""
    v = expr.evalf(digits, maxn=maxn)
    if not v.is_number or v.has(Symbol) or not v.is_finite:
        return None
    re_, im_ = v.as_real_imag()
    if not (re_.is_Number and im_.is_Number):
        return None
    return re_, im_


def _size(v) -> Expr:
    return v[0] ** 2 + v[1] ** 2


def same_number(a: Expr, b: Expr) -> bool | None:
    """Whether two numbers (see `as_number`) are equal; None if either has no finite value."""
    va, vb = _value(a), _value(b)
    if va is None or vb is None:
        return None
    size = max(_size(va), _size(vb))
    if a.has(Float) or b.has(Float):
        difference = ((va[0] - vb[0]), (va[1] - vb[1]))
        return bool(_size(difference) <= _FLOAT_TOLERANCE**2 * size)
    difference = a - b
    if difference == 0:
        return True
    vd = _value(difference, 30, MAX_DIGITS)
    if vd is None:
        return None
    if _size(vd) > _EXACT_TOLERANCE**2 * size:
        return False
    if _MIN_SIZE < size < _MAX_SIZE:
        return True
    return simplify(difference) == 0  # far from 1, vanishing to 480 digits is no proof


def refuted(gold, pred) -> bool:
    """Whether two expressions with variables differ at every sample set where both evaluate
    (and at least one such set exists)."""
    if not isinstance(gold, Expr) or not isinstance(pred, Expr):
        return False
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    if not symbols or len(symbols) > len(_SAMPLES[0]):
        return False
    differed = False
    for values in _SAMPLES:
        point = dict(zip(symbols, values))
        a, b = as_number(gold.subs(point)), as_number(pred.subs(point))
        if a is None or b is None:
            continue
        same = same_number(a, b)
        if same:
            return False
        differed |= same is False
    return differed


def same_equation(gold, pred) -> bool | None:
    """Whether two equations ``a = b`` and ``c = d`` are the same equation: ``a - b`` a constant
    multiple of ``c - d`` at every sample point (``5y-4x=50`` is ``4x-5y=-50``; ``x=5`` is
    ``2x=10``), or, in one variable, with the same solutions. None when they are not two
    equations of expressions (math-verify decides then)."""
    if not (isinstance(gold, Eq) and isinstance(pred, Eq)):
        return None
    if not all(isinstance(side, Expr) for e in (gold, pred) for side in (e.lhs, e.rhs)):
        return None  # x = {-2, 2}: a set of values, not one side of an equation
    dg, dp = gold.lhs - gold.rhs, pred.lhs - pred.rhs
    if not (isinstance(dg, Expr) and isinstance(dp, Expr)) or dg == 0 or dp == 0:
        return None
    symbols = sorted(dg.free_symbols | dp.free_symbols, key=str)
    if not symbols or len(symbols) > len(_SAMPLES[0]):
        return None
    ratios = []
    for values in _SAMPLES:
        point = dict(zip(symbols, values))
        a, b = as_number(dg.subs(point)), as_number(dp.subs(point))
        va, vb = (None, None) if a is None or b is None else (_value(a), _value(b))
        if va is None or vb is None or _size(vb) == 0:
            continue
        ratios.append(a / b)
    proportional = len(ratios) >= 2 and all(same_number(r, ratios[0]) for r in ratios[1:])
    if proportional:
        return True
    shared = same_solutions(gold, pred, both_equations=True)
    return bool(shared)


def is_statement(expr) -> bool:
    """Whether ``expr`` is, or holds, a truth value: an equation sympy already decided, or one
    without variables (``\\gcd(m+1,n)=1`` parses to ``1 = 1``)."""
    if isinstance(expr, BooleanAtom):
        return True
    if isinstance(expr, Relational) and not expr.free_symbols:
        return True
    return isinstance(expr, (FiniteSet, Tuple)) and any(
        isinstance(e, BooleanAtom) for e in expr.args
    )


def _values(expr) -> list[Expr] | None:
    items = expr.args if isinstance(expr, FiniteSet) else (expr,)
    numbers = [as_number(item) for item in items]
    return None if any(n is None for n in numbers) else numbers


def _solutions(expr) -> tuple[Symbol | None, list[Expr], bool] | None:
    """(variable, values, whether an equation was solved) of an equation in one variable, an
    assignment ``x=3`` (or ``x=\\pm 2``), a set of those, or plain values; None otherwise."""
    if isinstance(expr, Eq):
        if isinstance(expr.lhs, Symbol) and expr.lhs.name != "i":
            values = _values(expr.rhs)
            if values is not None:
                return Symbol(expr.lhs.name), values, False
        symbols = {s for s in expr.free_symbols if s.name != "i"}
        if len(symbols) != 1:
            return None
        (symbol,) = symbols
        plain = Symbol(symbol.name)  # latex2sympy's symbols are real: solve over the complex
        values = [as_number(v) for v in solve(expr.subs(symbol, plain), plain)]
        symbol = plain
        if any(v is None for v in values):
            return None
        return symbol, values, True
    if isinstance(expr, FiniteSet) and any(isinstance(item, Eq) for item in expr.args):
        found = [_solutions(item) for item in expr.args]
        if any(f is None for f in found) or len({f[0] for f in found}) != 1:
            return None
        return found[0][0], [v for f in found for v in f[1]], any(f[2] for f in found)
    values = _values(expr) if isinstance(expr, (Expr, FiniteSet)) else None
    return None if values is None else (None, values, False)


def same_solutions(gold, pred, both_equations: bool = False) -> bool | None:
    """Whether an equation in one variable and values or assignments have the same solutions
    (over the complex numbers); None unless exactly one side is such an equation, and None
    when the equation has no solution sympy finds. With ``both_equations``, two equations in
    one variable instead (a necessary condition only: ``x^2=0`` and ``x^7=0`` share theirs)."""
    g, p = _solutions(gold), _solutions(pred)
    if g is None or p is None or not g[1] or not p[1]:
        return None
    if (g[2] and p[2]) != both_equations or not (g[2] or p[2]):
        return None
    if g[0] is not None and p[0] is not None and g[0] != p[0]:
        return False

    def covered(xs, ys) -> bool:
        return all(any(same_number(x, y) for y in ys) for x in xs)

    return covered(g[1], p[1]) and covered(p[1], g[1])
