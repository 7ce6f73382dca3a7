"""Finding the final answer in a model's output, or in a reference written as prose.

`extract_boxed` returns the content of the last complete ``\\boxed{...}`` or ``\\fbox{...}``;
`extract_boxed_answers` joins the last *run* of boxes, as math-verify (and lm-eval's
minerva_math, which calls it) does: boxes separated only by commas, "and"/"or", math
delimiters or a ``x=`` before the next box are one answer list (``\\boxed{3}, \\boxed{5}`` is
``3, 5``), while a box followed by more reasoning and a later box is replaced by the later one.
`extract_answer` (for model outputs) takes that run, else GSM8K's ``#### 72``, else an explicit
"the answer is ..." phrase. `final_answer_text` (for either side of a comparison) also reads an
answer out of a sentence that ends by stating it: ``Therefore the ratio is $\\frac{3}{5}$.``
gives ``\\frac{3}{5}`` (the last run of ``$...$`` segments, after "is", "are", "=", ...), while
``All $n=3^b$, where $b$ is odd.`` stays a sentence (compared as text). Everything scans the text in linear time,
without recursion or backtracking regexes (10,000 nested braces, megabytes of text).
"""

from __future__ import annotations

import re

__all__ = ["extract_boxed", "extract_boxed_answers", "extract_answer", "final_answer_text"]

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


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete box, in order (``\\boxed 5`` included)."""
    closes: dict[int, int] | None = None
    found = []
    for m in _BOX_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            if closes is None:
                closes = _closing_braces(text)
            end = closes.get(j)
            if end is not None:
                found.append((m.start(), end + 1, text[j + 1 : end]))
        elif j > m.end() and j < len(text):  # "\boxed 5": one token after a space
            token = re.match(r"[^\s$.,;]+", text[j:])
            if token:
                found.append((m.start(), j + token.end(), token.group(0)))
    return found


# What may stand between two answers of one list: commas, "and"/"or", math delimiters, a
# \quad, and a "x =" just before the next answer ("$x=\boxed{3}$ or $x=\boxed{5}$").
_LIST_GAP = re.compile(
    r"(?:\s|\$|\\[()\[\]]|[,;]|\\q?quad(?![A-Za-z])|\\text\s*\{\s*(?:and|or|,)?\s*\}"
    r"|(?<![A-Za-z])(?:and|or)(?![A-Za-z]))*"
    r"(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?\s*=\s*)?"
)


def _last_run(spans: list[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    """The last spans that follow each other with only a list gap between."""
    if not spans:
        return []
    run = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not _LIST_GAP.fullmatch(text, span[1], run[0][0]):
            break
        run.insert(0, span)
    return run


def _run_from(spans: list[tuple[int, int, str]], text: str) -> list[str]:
    """The contents of the first spans that follow each other with only a list gap between."""
    run = spans[:1]
    for span in spans[1:]:
        if not _LIST_GAP.fullmatch(text, run[-1][1], span[0]):
            break
        run.append(span)
    return [content for _, _, content in run]


def extract_boxed_answers(text: str) -> str | None:
    """The last run of complete boxes (see the module docstring): the content of a lone box as
    `extract_boxed` gives it, the stripped contents of several joined with ", " (empty boxes
    skipped); None without a box."""
    if not text or ("\\boxed" not in text and "\\fbox" not in text):
        return None
    run = _last_run(_boxes(text), text)
    if len(run) <= 1:
        return run[0][2] if run else None
    parts = [c.strip() for _, _, c in run]
    return ", ".join(c for c in parts if c)


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, else None.

    Nested braces are kept (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``), the content is
    not stripped, and ``\\boxed 5`` gives ``5``. A box that is never closed (a generation cut off mid-answer) is skipped, and the
    last complete one before it is returned.
    """
    if not text:
        return None
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


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

    In order of preference: the last run of complete ``\\boxed{...}``/``\\fbox{...}``
    (`extract_boxed_answers`); the rest of the line after GSM8K's last ``####``; the text after
    the last "the answer is" / "final answer:" phrase, up to the end of its sentence. The result
    is stripped but otherwise raw: pass it to `is_equivalent`, which normalises both sides.
    """
    if not text:
        return None
    boxed = extract_boxed_answers(text)
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


# $...$, \(...\) and \[...\] segments (an escaped \$ is a dollar sign, not a delimiter).
_MATH_SEGMENT = re.compile(
    r"(?<!\\)\$\$(?P<a>.+?)(?<!\\)\$\$|(?<!\\)\$(?P<b>.+?)(?<!\\)\$|\\\((?P<c>.+?)\\\)|\\\[(?P<d>.+?)\\\]",
    re.S,
)
_PROSE_WORD = re.compile(r"[A-Za-z]{3,}")
_SENTENCE_END = re.compile(r"[\s.;!]*")
_STATES = re.compile(
    r"(?:\b(?:is|are|was|were|be|equals?|gives?|gets?|obtains?|yields?)|[=:])\s*$", re.I
)


def _math_segments(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), next(g for g in m.groups() if g is not None))
            for m in _MATH_SEGMENT.finditer(text)]  # fmt: skip


def final_answer_text(text: str) -> str:
    """The final answer a text states, for comparing: ``text`` itself when it is already a bare
    answer; else the last run of boxes, the answer after GSM8K's ``####``, the math of an "the
    answer is" phrase, or the last run of ``$...$`` segments of a sentence (see the module
    docstring)."""
    if "\\boxed" in text or "\\fbox" in text:
        boxed = extract_boxed_answers(text)
        if boxed is not None and boxed.strip():
            return boxed.strip()
    if "####" in text:
        found = extract_answer(text)
        if found is not None:
            return found
    if "$" not in text and "\\(" not in text and "\\[" not in text:
        if _PHRASE_RE.search(text):
            return extract_answer(text) or text
        return text
    segments = _math_segments(text)
    if not segments:
        return text
    outside = _MATH_SEGMENT.sub(" ", text)
    if not _PROSE_WORD.search(outside):  # "$5$" or "$x=1$, $y=2$": no sentence around
        return text
    phrases = list(_PHRASE_RE.finditer(text))
    if phrases:
        after = [s for s in segments if s[0] >= phrases[-1].end()]
        if after:  # "the final answer is $5$, since ...": the run right after the phrase
            return ", ".join(_run_from(after, text))
        return extract_answer(text) or text
    run = _last_run(segments, text)
    # Only a sentence that ends by stating its value ("... is $x$.", "... are $a$ and $b$.")
    # gives it away; in "All $n=3^b$, where $b$ is odd." the last math is no answer.
    if _SENTENCE_END.fullmatch(text, run[-1][1]) and _STATES.search(text, 0, run[0][0]):
        return ", ".join(content for _, _, content in run)
    return text
