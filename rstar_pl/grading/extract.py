"""Finding the final answer in a model's output.

`extract_boxed` returns the content of the last complete ``\\boxed{...}`` or ``\\fbox{...}``;
`extract_answer` falls back to GSM8K's ``#### 72`` and then to an explicit "the answer is ..."
phrase. Both scan the text once, without recursion or backtracking regexes, so any input
(10,000 nested braces, megabytes of text) returns in linear time.
"""

from __future__ import annotations

import re

__all__ = ["extract_boxed", "extract_answer"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*)")
# "The answer is 12", "the final answer is $\frac12$", "Final Answer: 7", a line "Answer: 7"
_PHRASE_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer\s*(?:is)?\s*:|(?:^|\n)[ \t*#]*answer\s*:)"
    r"[ \t*:]*",
    re.IGNORECASE,
)


def _closing_braces(text: str) -> dict[int, int]:
    """Map the position of every closed ``{`` to its ``}``, in one pass (escaped braces skipped)."""
    closes: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":  # \{ and \} are literal braces, not groups
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            closes[stack.pop()] = i
        i += 1
    return closes


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, else None.

    Nested braces are kept (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``), the content is
    not stripped, and ``\\boxed 5`` gives ``5``. A box that is never closed (a generation cut off mid-answer) is skipped, and the
    last complete one before it is returned.
    """
    if not text:
        return None
    boxes = list(_BOX_RE.finditer(text))
    if not boxes:
        return None
    closes = _closing_braces(text)
    for m in reversed(boxes):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = closes.get(j)
            if end is not None:
                return text[j + 1 : end]
        elif j > m.end() and j < len(text):  # "\boxed 5": one token after a space
            token = re.match(r"[^\s$.,;]+", text[j:])
            if token:
                return token.group(0)
    return None


def _clean_phrase(answer: str) -> str:
    # The phrase runs to the end of its line or sentence; a period between digits stays (3.5).
    answer = answer.split("\n", 1)[0]
    m = re.search(r"\.(?!\d)(\s|$)", answer)
    if m:
        answer = answer[: m.start()]
    answer = answer.strip().strip("*").rstrip(".;,").strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if (
            answer.startswith(left)
            and answer.endswith(right)
            and len(answer) >= len(left) + len(right)
        ):
            answer = answer[len(left) : len(answer) - len(right)].strip()
    return answer


def extract_answer(text: str) -> str | None:
    """The final answer stated in ``text``, or None when it states none.

    In order of preference: the content of the last complete ``\\boxed{...}``/``\\fbox{...}``;
    the rest of the line after GSM8K's last ``####``; the text after the last "the answer is" /
    "final answer:" phrase, up to the end of its sentence. The result is stripped but otherwise
    raw: pass it to `is_equivalent`, which normalises both sides.
    """
    if not text:
        return None
    boxed = extract_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    hashes = list(_GSM8K_RE.finditer(text))
    if hashes:
        answer = hashes[-1].group(1).strip()
        if answer:
            return answer
    phrases = list(_PHRASE_RE.finditer(text))
    if phrases:
        answer = _clean_phrase(text[phrases[-1].end() :])
        if answer:
            return answer
    return None
