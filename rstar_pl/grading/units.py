r"""The unit an answer names, so that ``5 cm`` and ``5 m`` are not the same answer.

`normalize` drops units (``90\text{ square units}`` is 90, ``\$10`` is 10), because references
and predictions name them inconsistently. That must not make two answers equal that name
*different* units: `unit_of` returns the canonical name of a unit written after the number
(``5\text{ cm}``, ``5 centimeters``, ``3 hrs``, ``12\mathrm{~m}^2``) or a currency sign before
it (``\$10``), and `is_equivalent` calls two answers unequal when both name a known unit and the
units differ. An unknown word (``9\text{ a.m.}``, ``2 pi``) names no unit; no unit is
converted (``50 cents`` is not ``\$0.50``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from rstar_pl.grading.extract import final_answer_text

__all__ = ["unit_of"]

_NAMES = {
    "mm": "mm millimeter millimeters millimetre millimetres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "m": "m meter meters metre metres",
    "km": "km kilometer kilometers kilometre kilometres",
    "in": "in inch inches",
    "ft": "ft foot feet",
    "yd": "yd yard yards",
    "mi": "mi mile miles",
    "s": "s sec secs second seconds",
    "min": "min mins minute minutes",
    "h": "h hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "g": "g gram grams",
    "kg": "kg kilogram kilograms",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "l": "l liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "dollar": "dollar dollars usd",
    "cent": "cent cents",
    "euro": "euro euros eur",
    "mph": "mph",
}
_CANONICAL = {word: unit for unit, words in _NAMES.items() for word in words.split()}
_POWERS = {"square": 2, "sq": 2, "cubic": 3}

_WRAPPED = re.compile(r"\\(?:text|mathrm|textrm|mbox|rm|operatorname)\s*\{([^{}]*)\}")
_SPACES = re.compile(r"\\[,;:!> ]|~|\\q?quad(?![A-Za-z])")
_CURRENCY_SIGN = re.compile(r"^[-+]?\s*(?:\\\$|\\euro|\u20ac)")
# The words after a number (or a closing brace), possibly with ^2, at the end of the answer.
_TRAILING = re.compile(
    r"(?:(?<=[\d}).])|(?<=\d\s)|(?<=[}).]\s))\s*"
    r"(?P<words>[A-Za-z]+(?:\s+[A-Za-z]+)?)\.?\s*(?:\^\s*\{?\s*(?P<power>[1-9])\s*\}?)?\s*\.?$"
)


@lru_cache(maxsize=1 << 14)
def unit_of(answer: str) -> str | None:
    """The canonical unit ``answer`` names (``cm``, ``m^2``, ``dollar``, ...), else None."""
    if len(answer) > 400:
        return None
    s = final_answer_text(answer).strip().strip("$").strip()
    if _CURRENCY_SIGN.match(s):
        return "dollar" if "\\$" in s[:4] else "euro"
    wrapped = bool(_WRAPPED.search(s))
    s = _SPACES.sub(" ", _WRAPPED.sub(r" \1", s))
    m = _TRAILING.search(s)
    if not m:
        return None
    words = m.group("words").lower().split()
    power = int(m.group("power") or 1)
    if len(words) == 2:
        if words[0] not in _POWERS:
            return None
        power, words = _POWERS[words[0]], words[1:]
    unit = _CANONICAL.get(words[0])
    if unit is None:
        return None
    if len(unit) <= 2 and not wrapped and not re.search(r"\s" + re.escape(words[0]), s):
        return None  # "5m" is 5 times m; "5 m" and "5\text{m}" are five metres
    return unit if power == 1 else f"{unit}^{power}"
