"""Canonical LaTeX for a final answer, before any comparison.

`normalize` maps the many ways one answer is written to one string: ``$\\dfrac{1}{2}$``,
``\\tfrac12`` and ``\\frac 12`` all become ``\\frac{1}{2}``; ``\\$15,\\!000`` becomes ``15000``;
``90\\text{ square units}`` becomes ``90``; ``\\left( 3, \\frac{\\pi}{2} \\right)`` becomes
``(3,\\frac{\\pi}{2})``. Percent signs become ``\\%`` and degree marks ``^{\\circ}``, so that the
number parser and math-verify both see them. One set has one spelling: ``\\varnothing``,
``\\{\\}`` and the empty-set sign become ``\\emptyset``; ``\\mathbb{R}`` and "all real numbers"
become ``(-\\infty,\\infty)``. A whole solution or a sentence is first reduced to the answer it
states (`final_answer_text`: the last run of boxes, GSM8K's ``#### N``, the math of the last
sentence).

Commas: a comma followed by a space separates answers (``32, 349`` is two numbers); a string
that is one well-formed thousands-grouped number (``32,349``, ``1,000,000``, ``32,\\!349``,
``32{,}349``) loses its commas. ``7 3/4`` is the mixed number ``7\\frac{3}{4}`` (whitespace is
removed later, and ``73/4`` would be another number).

Strings longer than `MAX_CHARS` (no real final answer is) only lose whitespace and dollar signs,
which keeps every regex here on short input.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rstar_pl.grading.extract import final_answer_text

__all__ = ["normalize", "text_content"]

_UNICODE = {
    "\u2212": "-",  # minus sign
    "\u2013": "-",
    "\u00d7": "\\times ",
    "\u00f7": "\\div ",
    "\u00b7": "\\cdot ",
    "\u03c0": "\\pi ",
    "\u221e": "\\infty ",
    "\u221a": "\\sqrt",
    "\u2264": "\\leq ",
    "\u2265": "\\geq ",
    "\u2260": "\\neq ",
    "\u222a": "\\cup ",
    "\u2229": "\\cap ",
    "\u00b0": "^{\\circ}",
    "\uff0c": ",",
    "\u2205": "\\emptyset ",
    "\u211d": "\\mathbb{R}",
}

# Sizing and spacing commands that carry no meaning.
_SIZING = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)(?![A-Za-z])\.?"
)
_SPACING = re.compile(
    r"\\[!,;:>]|\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])|~"
)
# \quad between answers separates them ("f(x)=0, \quad f(x)=x" or "x=1 \quad y=2").
_QUAD = re.compile(r"\s*,?\s*\\q?quad(?![A-Za-z])\s*,?\s*")
_COMMAS = re.compile(r",(?:\s*,)+")
_APPROX = re.compile(r"\\approx(?![A-Za-z])")  # "a \approx 0.87": the value is the last part
_BACKSLASH_SPACE = re.compile(r"(?<!\\)\\ ")
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_STYLE_WRAPPERS = re.compile(
    r"\\(?:mathrm|mathbf|mathit|mathsf|mathtt|textbf|textit|textrm|textnormal|mbox|operatorname|rm|bf|it)(?![A-Za-z])"
)
_DEGREES = re.compile(
    r"\^\s*\{?\s*\\circ\s*\}?|\\degree(?![A-Za-z])|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}"
)
_PERCENT = re.compile(r"\\?%|\\text\{\s*percent\s*\}|(?<!\s)\s+percent\b")
_RELATIONS = [  # \leqx (no space) occurs in reference answers, so no lookahead after leq/geq
    (re.compile(r"\\(?:leqslant|leqq|leq|le(?![A-Za-z]))"), r"\\leq "),
    (re.compile(r"\\(?:geqslant|geqq|geq|ge(?![A-Za-z]))"), r"\\geq "),
    (re.compile(r"\\(?:neq|ne(?![A-Za-z]))"), r"\\neq "),
    (re.compile(r"<="), r"\\leq "),
    (re.compile(r">="), r"\\geq "),
]
_TEXT_GROUP = re.compile(r"\\text\s*\{([^{}]*)\}")
_CURRENCY = re.compile(
    r"\\\$|\$|\\(?:euro|pounds)(?![A-Za-z])|\u20ac|\u00a3|\bUSD\b|\bdollars?\b|\bcents?\b"
)
# A unit after the value: \text{...} or \mathrm{...} groups, possibly with ^2, at the end.
_TRAILING_TEXT_UNIT = re.compile(
    r"(?<=[0-9}a-zA-Z)\]])\s*(?:\\text\s*\{(?!\s*[ie]\s*\})[^{}]*\}\s*(?:\^\s*\{?\d\}?)?\s*)+$"
)  # not \text{i} or \text{e}: the imaginary unit and Euler's number
# Plain words after a number: "90 square units", "5 cm", "12 dollars".
_TRAILING_WORDS = re.compile(
    r"^([-+]?[0-9.,/]*[0-9])\s+([A-Za-z]{2,}[A-Za-z.]*(?:\s+[A-Za-z]{2,}[A-Za-z.]*)*)(?:\^\{?\d\}?)?$"
)
_MATH_WORDS = {"pi", "sqrt", "ln", "log", "exp", "sin", "cos", "tan", "cot", "sec", "csc", "inf"}
# "3, 5, and 7": the comma before "and" belongs to the same separator.
_AND_OR = re.compile(
    r"\s*,?\s*(?:\\text\s*\{\s*(?:and|or|,)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*"
)
_WHITESPACE = re.compile(r"(\\[A-Za-z]+)?\s+(?=([A-Za-z])?)")
_FRAC_SHORT = [
    (re.compile(r"\\frac(\d)(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac(\d)\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac(\\[A-Za-z]+)(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\{([^{}]*)\}(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\{([^{}]*)\}(\\[A-Za-z]+)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\sqrt(\d)"), r"\\sqrt{\1}"),
    (re.compile(r"\\sqrt(\\[A-Za-z]+)"), r"\\sqrt{\1}"),
]
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_THOUSANDS_THIN = re.compile(r"(?<=\d),\\!(?=\d{3}(?!\d))")  # 32,\!348 (MATH's style)
_MIXED_SPACED = re.compile(r"(?<![\d.])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\d.])")  # 7 3/4
_EMPTY_SET = re.compile(r"\\(?:varnothing|emptyset)(?![A-Za-z])|\\\{\s*\\\}|\\O(?![A-Za-z])")
_REALS = re.compile(
    r"\\mathbb\s*\{\s*R\s*\}|\\mathbb\s+R(?![A-Za-z])|\\R(?![A-Za-z])"
    r"|(?:\\text\s*\{\s*)?(?:the\s+)?(?:set\s+of\s+)?all\s+real\s+numbers(?:\s*\})?"
)
_THOUSANDS_BRACE = re.compile(r"(?<=\d)\{,\}(?=\d{3}(?!\d))")
_DECIMAL_BRACE = re.compile(r"(?<=\d)\{,\}(?=\d)")
_PLUS_INFTY = re.compile(r"(?<![0-9A-Za-z}\)])\+\\infty")
_LEADING_MEMBER = re.compile(r"^[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?\\in(?![A-Za-z])")
_OUTER_DELIMS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in _OUTER_DELIMS:
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
    return s


def text_content(s: str) -> str:
    """``s`` with every ``\\text{...}`` group replaced by its content."""
    return _TEXT_GROUP.sub(r"\1", s)


def _collapse_whitespace(s: str) -> str:
    # Spaces mean nothing in LaTeX math, except one that ends a command before a letter
    # (\pi r must not become \pir).
    def keep(m: re.Match[str]) -> str:
        command = m.group(1) or ""
        return command + " " if command and m.group(2) else command

    return _WHITESPACE.sub(keep, s).strip()


MAX_CHARS = 2000  # longer strings (no real final answer is) only lose whitespace and dollars
_SPACE_OR_DOLLAR = re.compile(r"\s+|\\?\$")


@lru_cache(maxsize=1 << 16)
def normalize(answer: str) -> str:
    """The canonical form of one final answer (see the module docstring); '' for no answer."""
    if len(answer) > MAX_CHARS:  # keeps every regex below on short strings
        return _SPACE_OR_DOLLAR.sub("", answer)
    s = final_answer_text(answer.strip()).strip()
    s = _strip_delimiters(s)
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    s = s.replace("\n", " ").replace("\t", " ")
    s = _THOUSANDS_THIN.sub("{,}", s)  # before \! becomes a space, which would mean a list
    s = _SIZING.sub("", s)
    s = _SPACING.sub(" ", s)
    s = _QUAD.sub(",", s).strip(",")
    s = _APPROX.sub("=", s)
    s = _BACKSLASH_SPACE.sub(" ", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _STYLE_WRAPPERS.sub(r"\\text", s)
    s = s.replace("\\text {", "\\text{")
    s = _DEGREES.sub("^{\\\\circ}", s)
    s = re.sub(r"\\text\{\s*degrees?\s*\}|(?<=\d)\s*degrees?\b", "^{\\\\circ}", s)
    s = _PERCENT.sub(r"\\%", s)
    for pattern, repl in _RELATIONS:
        s = pattern.sub(repl, s)
    s = _CURRENCY.sub("", s).strip()
    # \text{ and } / "or" between answers separate them like a comma.
    s = _AND_OR.sub(",", s)
    s = _COMMAS.sub(",", s)  # "\quad \text{or} \quad" made two separators of one
    # Units: drop trailing \text{...} after a value, or plain words after a number.
    unitless = _TRAILING_TEXT_UNIT.sub("", s).strip()
    if unitless and unitless != s:
        s = unitless
    m = _TRAILING_WORDS.match(s)
    if m and not _MATH_WORDS.intersection(m.group(2).lower().split()):
        s = m.group(1)
    s = text_content(s)
    s = _EMPTY_SET.sub(r"\\emptyset ", s)
    s = _REALS.sub(r"(-\\infty,\\infty)", s)
    s = s.strip().rstrip(".").strip()
    if _THOUSANDS.fullmatch(s):  # before whitespace goes: "32, 349" is a list, not 32349
        s = s.replace(",", "")
    s = _MIXED_SPACED.sub(r"\1\\frac{\2}{\3}", s)
    s = _collapse_whitespace(s)
    s = s.rstrip(".").strip()
    if "{,}" in s:  # 1{,}000 groups thousands; 3{,}5 is a decimal comma
        s = _DECIMAL_BRACE.sub(".", _THOUSANDS_BRACE.sub("", s))
    for pattern, repl in _FRAC_SHORT:
        s = pattern.sub(repl, s)
    s = _PLUS_INFTY.sub(r"\\infty", s)
    s = _LEADING_MEMBER.sub("", s)
    s = re.sub(r"(?<![0-9])\.(?=\d)", "0.", s)
    return s
