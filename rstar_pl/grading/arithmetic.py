r"""Exact values of numeric answers: integers, fractions, powers, factorials and ``i``.

`evaluate` reads a canonical answer (see `normalize`) made of numbers, ``i``, ``+ - \cdot
\times / \div``, juxtaposition, parentheses, ``\frac{..}{..}``, ``^`` and ``!``, and returns its
exact value as a Gaussian rational ``(real, imaginary)`` of `Fraction`\ s; None for anything
else (symbols, roots, pi) and for values too big to build.

Why not leave these to sympy: math-verify compares two numbers by evaluating their difference
to 15 digits and chopping what is small in absolute terms, so ``1/2^{98}`` and ``1/2^{99}``, or
``1/2006!`` and ``1/2004!``, came out equal. Here they are compared exactly, and in
microseconds. Nothing grows without bound: before a product, power or factorial is computed
its size is estimated, and past `MAX_BITS` the whole answer is left undecided (None), so
``2^{2^{2^{2^{2}}}}`` or ``99999!`` cost no time; `equivalence` then compares them as text.

Conventions: ``i`` is the imaginary unit; an integer written against a fraction of integers is
a mixed number (``7\frac{3}{4}`` is 31/4, as in `numeric`); an unbraced exponent of more than
one digit (``2^10``: writers mean 2^{10}, LaTeX typesets 2^1 0) and a juxtaposed product right
after ``/`` (``1/2i``: 1/(2i) or i/2?) are ambiguous and left undecided.

Standard library only, like `numeric`.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["evaluate", "MAX_BITS"]

MAX_BITS = 70_000  # about 21,000 digits: 2^{65536} and 5000! fit, 2^{2^{2^{2^{2}}}}+1 does not
MAX_CHARS = 600
_MAX_DEPTH = 40
_TOKEN = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+|\\[A-Za-z]+|.)")
_OPERATORS = {"\\cdot": "*", "\\times": "*", "\\div": "/", "*": "*", "/": "/"}

Exact = tuple[Fraction, Fraction]
_ZERO = Fraction(0)
_ONE: Exact = (Fraction(1), _ZERO)


class _Undecided(Exception):
    """The answer is not plain arithmetic, or its value would be too big to build."""


def _bits(v: Exact) -> int:
    return max(
        v[0].numerator.bit_length(), v[0].denominator.bit_length(),
        v[1].numerator.bit_length(), v[1].denominator.bit_length(),
    )  # fmt: skip


def _check(bits: int) -> None:
    if bits > MAX_BITS:
        raise _Undecided


def _mul(a: Exact, b: Exact) -> Exact:
    _check(_bits(a) + _bits(b) + 1)
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _div(a: Exact, b: Exact) -> Exact:
    if b[1] == 0:  # a real divisor: no norm to build
        if b[0] == 0:
            raise _Undecided
        _check(_bits(a) + _bits(b) + 1)
        return a[0] / b[0], a[1] / b[0]
    norm = b[0] * b[0] + b[1] * b[1]
    _check(_bits(a) + 3 * _bits(b) + 2)
    return (a[0] * b[0] + a[1] * b[1]) / norm, (a[1] * b[0] - a[0] * b[1]) / norm


def _integer(v: Exact) -> int:
    if v[1] != 0 or v[0].denominator != 1:
        raise _Undecided
    return v[0].numerator


def _power(base: Exact, exponent: Exact) -> Exact:
    e = _integer(exponent)
    if base in ((_ZERO, Fraction(1)), (_ZERO, Fraction(-1))):  # i^e cycles with period 4
        unit = [
            (Fraction(1), _ZERO),
            (_ZERO, Fraction(1)),
            (Fraction(-1), _ZERO),
            (_ZERO, Fraction(-1)),
        ]
        return unit[(e * (1 if base[1] > 0 else -1)) % 4]
    if base[1] == 0 and base[0] in (1, -1):
        return (Fraction(1) if base[0] == 1 or e % 2 == 0 else Fraction(-1)), _ZERO
    if base == (_ZERO, _ZERO):
        if e <= 0:
            raise _Undecided  # 0^0 and 1/0
        return base
    if base[1] == 0:  # log2 of the larger of numerator and denominator, times |e|
        size = max(abs(base[0].numerator), base[0].denominator)
        _check(math.ceil(abs(e) * math.log2(size)) + 1)
    else:
        _check(_bits(base) * abs(e))
    result, square, n = _ONE, base, abs(e)
    while n:
        if n & 1:
            result = _mul(result, square)
        n >>= 1
        if n:
            square = _mul(square, square)
    return _div(_ONE, result) if e < 0 else result


def _factorial(v: Exact) -> Exact:
    n = _integer(v)
    if n < 0:
        raise _Undecided
    _check(int(n * math.log2(max(n, 2))) + 1)
    return Fraction(math.factorial(n)), _ZERO


class _Parser:
    """Recursive descent over the tokens of one answer; any surprise raises `_Undecided`."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t.strip()]
        self.i = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Undecided
        self.i += 1
        return token

    def parse(self) -> Exact:
        value = self.sum()
        if self.peek() is not None:
            raise _Undecided
        return value

    def sum(self) -> Exact:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Undecided
        value = self.product()
        while self.peek() in ("+", "-"):
            sign = self.take()
            term = self.product()
            if sign == "-":
                term = -term[0], -term[1]
            value = value[0] + term[0], value[1] + term[1]
            _check(_bits(value))  # sums of fractions grow their denominators
        self.depth -= 1
        return value

    def product(self) -> Exact:
        value = self.signed()
        after_division = False
        while True:
            token = self.peek()
            if token in _OPERATORS:
                self.take()
                op = _OPERATORS[token]
                factor = self.signed()
                value = _mul(value, factor) if op == "*" else _div(value, factor)
                after_division = op == "/"
            elif token is not None and self.starts_primary(token):
                if after_division:
                    raise _Undecided  # 1/2i: ambiguous
                value = _mul(value, self.power())
            else:
                return value

    def signed(self) -> Exact:
        negative = False
        while self.peek() in ("-", "+"):
            negative ^= self.take() == "-"
        v = self.power()
        return (-v[0], -v[1]) if negative else v

    @staticmethod
    def starts_primary(token: str) -> bool:
        return token[0].isdigit() or token[0] == "." or token in ("i", "(", "{", "\\frac")

    def power(self) -> Exact:
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            token = self.peek()
            if token == "{":
                exponent = self.group("{", "}")
            elif token is not None and token.isdigit() and len(token) == 1:
                self.take()
                exponent = (Fraction(int(token)), _ZERO)
            else:
                raise _Undecided  # 2^10, 2^x, 2^-1: left to the symbolic path
            base = _power(base, exponent)
            while self.peek() == "!":
                self.take()
                base = _factorial(base)
        return base

    def postfix(self) -> Exact:
        value = self.primary()
        while self.peek() == "!":
            self.take()
            value = _factorial(value)
        return value

    def group(self, open_: str, close: str) -> Exact:
        self.take(open_)
        value = self.sum()
        self.take(close)
        return value

    def primary(self) -> Exact:
        token = self.peek()
        if token is None:
            raise _Undecided
        if token == "(":
            return self.group("(", ")")
        if token == "{":
            return self.group("{", "}")
        if token == "i":
            self.take()
            return _ZERO, Fraction(1)
        if token == "\\frac":
            self.take()
            numerator = self.group("{", "}")
            return _div(numerator, self.group("{", "}"))
        if token[0].isdigit() or token[0] == ".":
            self.take()
            return self.number(token)
        raise _Undecided

    def number(self, token: str) -> Exact:
        if len(token) > MAX_BITS // 3:
            raise _Undecided
        value = Fraction(token)
        if "." in token and self.peek() == "\\overline":  # 0.1\overline{6}
            self.take()
            self.take("{")
            digits = self.take()
            self.take("}")
            if not digits.isdigit():
                raise _Undecided
            shown = len(token.partition(".")[2])
            value += Fraction(int(digits), (10 ** len(digits) - 1) * 10**shown)
        elif "." not in token and self.peek() == "\\frac":  # 7\frac{3}{4}: a mixed number
            mark = self.i
            parts = self.tokens[mark : mark + 7]
            if (
                len(parts) == 7
                and parts[1::3] == ["{", "{"]
                and parts[3::3] == ["}", "}"]
                and parts[2].isdigit()
                and parts[5].isdigit()
                and int(parts[5])
            ):
                self.i = mark + 7
                return value + Fraction(int(parts[2]), int(parts[5])), _ZERO
        return value, _ZERO


def evaluate(answer: str) -> Exact | None:
    """The exact value ``(real, imaginary)`` of a canonical numeric answer, or None when it is
    not plain arithmetic over numbers and ``i`` or is too big (see the module docstring)."""
    if not answer or len(answer) > MAX_CHARS or not answer.isascii():
        return None
    try:
        return _Parser(answer).parse()
    except (_Undecided, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
