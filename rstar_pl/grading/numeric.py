"""Exact numbers without sympy: the fast path for most answers.

`parse_number` reads integers, numerals in a base (``443_5``), decimals, repeating decimals
(``0.1\\overline{6}``), scientific
notation, powers, ``a/b``, ``\\frac{a}{b}``, mixed numbers (``2\\frac{1}{2}``), percentages and
degrees into a `Fraction`; `numbers_equal` compares two of them. Sizes are bounded (digit
strings and exponents), so no input makes this slow. (`arithmetic` evaluates whole
expressions such as ``\\frac{1}{2^{98}}`` or ``i(2-i)`` into the same `Number`.)

This file imports only the standard library: the symbolic worker process loads it by path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Number", "parse_number", "numbers_equal", "approximates", "MIN_APPROX_DIGITS"]

# An answer written as a decimal that is not exactly the other value counts as an approximation
# of it when it shows at least this many significant digits and is the other value rounded or
# truncated to the digits shown (0.3333 for 1/3, 0.6667 or 0.6666 for 2/3, 1.414 for sqrt(2);
# not 0.33, 3.14 for pi, 1.4143 for sqrt(2), or 100.1 for 100). Four digits bound the relative
# error by 1e-3, whatever the magnitude: values a factor of 2 apart never pass.
MIN_APPROX_DIGITS = 4
_MAX_DIGITS = 2000  # longer digit strings are compared as text
_MAX_EXPONENT = 1000  # |exponent| of 10 beyond which a number is compared as text

_DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SIGNED_DEC = rf"[-+]?{_DEC}"
_SCI = re.compile(
    rf"(?P<m>{_DEC})(?:[eE](?P<e1>[-+]?\d+)|(?:\\times|\\cdot|\*)10\^(?:\{{(?P<e2>[-+]?\d+)\}}|(?P<e3>\d)))?"
)
_POWER = re.compile(rf"(?P<m>{_DEC})\^(?:\{{(?P<e1>[-+]?\d+)\}}|(?P<e2>\d))")
_FRAC = re.compile(rf"\\frac\{{(?P<a>{_SIGNED_DEC})\}}\{{(?P<b>{_SIGNED_DEC})\}}")
_SLASH = re.compile(rf"(?P<a>{_DEC})/(?P<b>{_DEC})")
_MIXED = re.compile(r"(?P<w>\d+)\\frac\{(?P<a>\d+)\}\{(?P<b>\d+)\}")
_REPEATING = re.compile(r"(?P<w>\d*)\.(?P<f>\d*)\\overline\{(?P<r>\d{1,50})\}")
_BASE = re.compile(r"(?P<digits>[0-9A-Za-z]{1,64})_\{?(?P<base>\d{1,2})\}?")  # 443_5, 1200_{7}
_PERCENT_SUFFIX = "\\%"
_DEGREE_SUFFIX = "^{\\circ}"


@dataclass(frozen=True)
class Number:
    """An exactly parsed number. ``places`` is set only for decimals (digits shown after the
    point, less the power of ten), which may be approximations; ``digits`` counts their
    significant digits."""

    value: Fraction
    places: int | None = None
    digits: int = 0
    percent: bool = False
    degrees: bool = False
    imag: Fraction = Fraction(0)  # the imaginary part, from `arithmetic` (i(2-i) is 1+2i)


def _decimal(text: str, exponent: int = 0) -> tuple[Fraction, int | None, int] | None:
    if len(text) > _MAX_DIGITS or abs(exponent) > _MAX_EXPONENT:
        return None
    whole, _, frac = text.partition(".")
    value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    value *= Fraction(10) ** exponent
    if "." not in text:
        return value, None, 0
    significant = (whole + frac).lstrip("0")
    return value, len(frac) - exponent, len(significant)


def _exponent(m: re.Match[str]) -> int:
    e = next(
        (g for g in (m.group(k) for k in ("e1", "e2", "e3") if k in m.re.groupindex) if g), "0"
    )
    return int(e) if len(e) <= 6 else _MAX_EXPONENT + 1


def _parse_unsigned(s: str) -> tuple[Fraction, int | None, int] | None:
    if m := _SCI.fullmatch(s):
        return _decimal(m.group("m"), _exponent(m))
    if m := _POWER.fullmatch(s):  # 10^{6}, 2^{10}, 1.5^2: exact while the result stays small
        base, e = Fraction(m.group("m")), _exponent(m)
        if (
            base == 0
            or abs(e) * max(math.log10(abs(base.numerator)), math.log10(base.denominator), 1)
            > _MAX_DIGITS
        ):
            return None
        return base**e, None, 0
    if (m := _FRAC.fullmatch(s)) or (m := _SLASH.fullmatch(s)):
        a, b = m.group("a"), m.group("b")
        if len(a) > _MAX_DIGITS or len(b) > _MAX_DIGITS:
            return None
        den = Fraction(b)
        return (Fraction(a) / den, None, 0) if den else None
    if m := _BASE.fullmatch(s):  # a numeral in base 2-36: its value (443_5 is 123)
        base = int(m.group("base"))
        try:
            return (Fraction(int(m.group("digits"), base)), None, 0) if 2 <= base <= 36 else None
        except ValueError:  # a digit the base does not have
            return None
    if m := _REPEATING.fullmatch(s):  # 0.1\overline{6} = 0.1 + 6/90: exact, not a decimal
        whole, shown, period = m.group("w"), m.group("f"), m.group("r")
        if len(whole) + len(shown) > _MAX_DIGITS:
            return None
        value = Fraction(int(whole or "0")) + Fraction(int(shown or "0"), 10 ** len(shown))
        value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(shown))
        return value, None, 0
    if m := _MIXED.fullmatch(s):
        if len(s) > _MAX_DIGITS:
            return None
        den = int(m.group("b"))
        return (int(m.group("w")) + Fraction(int(m.group("a")), den), None, 0) if den else None
    return None


def parse_number(s: str) -> Number | None:
    """The number a canonical answer string (see `normalize`) denotes, or None if it is not a
    plain number. ``-\\frac{3}{4}``, ``0.75``, ``75\\%``, ``7.5\\times10^{-1}``, ``3/4`` all parse."""
    percent = degrees = False
    if s.endswith(_PERCENT_SUFFIX):
        s, percent = s[: -len(_PERCENT_SUFFIX)], True
    elif s.endswith(_DEGREE_SUFFIX):
        s, degrees = s[: -len(_DEGREE_SUFFIX)], True
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s or len(s) > 2 * _MAX_DIGITS + 40:
        return None
    try:
        parsed = _parse_unsigned(s)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if parsed is None:
        return None
    value, places, digits = parsed
    return Number(sign * value, places, digits, percent, degrees)


def approximates(approx: Number, exact: Fraction) -> bool:
    """Whether the decimal ``approx`` is ``exact`` rounded (half a unit of its last digit either
    way) or truncated toward zero at the digits it shows, showing at least `MIN_APPROX_DIGITS`
    significant digits."""
    if approx.places is None or approx.digits < MIN_APPROX_DIGITS or approx.imag:
        return False
    unit = Fraction(10) ** (-approx.places)
    error = exact - approx.value
    if abs(error) <= unit / 2:
        return True
    toward_zero = error if approx.value >= 0 else -error  # exact lies beyond approx, from 0
    return 0 <= toward_zero < unit and (exact >= 0) == (approx.value >= 0)


def _candidates(n: Number, other: Number) -> list[Fraction]:
    # "44%" may be graded against 44 or against 0.44; two percentages compare as written.
    return [n.value, n.value / 100] if n.percent and not other.percent else [n.value]


def numbers_equal(a: Number, b: Number) -> bool:
    """Exact equality, allowing a percentage to stand for its number or its fraction (against a
    number that is not a percentage) and a decimal approximation (see `approximates`) of a real
    value not itself written as a decimal. Degree marks are ignored."""
    if a.imag or b.imag:
        return (a.value, a.imag) == (b.value, b.imag)
    for x in _candidates(a, b):
        for y in _candidates(b, a):
            if x == y:
                return True
    for approx, exact in ((a, b), (b, a)):
        # A decimal approximates a fraction, never another decimal: 16386.1 is not 16386.16.
        if approx.places is not None and exact.places is None and not approx.percent:
            if any(approximates(approx, y) for y in _candidates(exact, approx)):
                return True
    return False
