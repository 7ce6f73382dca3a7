r"""Multiple-choice answers: a letter A-E, with or without the option's text.

`parse_choice` reads ``C``, ``(C)``, ``\text{(C)}``, ``\textbf{(C) }12``, ``(C) 12``, ``C. 12``,
``C: 12`` and ``C) 12`` as the letter C with the option text ("" or "12"). A bare lower-case
letter (``c``) is only a *weak* choice: it counts as a letter against a strong one (``c`` is
``C``), but two lower-case letters are compared as the variables they may be.

How `is_equivalent` uses it: two letters are compared as letters, whatever text follows them
(the letter is what a grader scores); a letter with its option text against a plain answer
compares that text (``12`` is ``(C) 12``); a bare letter against a plain answer is unequal
(``12`` against ``C``: which option says 12 is not known).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rstar_pl.grading.extract import final_answer_text

__all__ = ["Choice", "parse_choice"]

_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|bf|rm)\s*\{([^{}]*)\}")
_DELIMITERS = re.compile(r"^\s*(?:\$+|\\\(|\\\[)\s*|\s*(?:\$+|\\\)|\\\])\s*$")
_PARENTHESIZED = re.compile(r"\(\s*([A-Ea-e])\s*\)\s*(.*)", re.S)
_UPPER = re.compile(r"([A-E])(?:\s*[.:)]\s*(.*)|\s*)", re.S)
_LOWER = re.compile(r"([a-e])")


@dataclass(frozen=True)
class Choice:
    letter: str  # upper case
    text: str  # the option's text as written, "" when none
    strong: bool  # False for a bare lower-case letter


@lru_cache(maxsize=1 << 14)
def parse_choice(answer: str) -> Choice | None:
    """The choice ``answer`` states (see the module docstring), else None."""
    if len(answer) > 400:
        return None
    s = final_answer_text(answer)
    for _ in range(3):  # \textbf{\text{(C)}}
        s = _WRAPPERS.sub(r"\1", s)
    s = _DELIMITERS.sub("", s).strip()
    if m := _PARENTHESIZED.fullmatch(s):
        return Choice(m.group(1).upper(), m.group(2).strip(), True)
    if m := _UPPER.fullmatch(s):
        return Choice(m.group(1), (m.group(2) or "").strip(), True)
    if _LOWER.fullmatch(s):
        return Choice(s.upper(), "", False)
    return None
