"""`is_equivalent`: whether two final answers are mathematically the same.

The order of work, cheapest first:

1. both strings are normalised (`normalize`); equal canonical strings are equal answers;
2. multiple-choice letters, ``x=3`` against ``3``, words (``\\text{Monday}``) are settled here;
3. the answer's shape (`parse_structure`: lists, sets, tuples, intervals, matrices) is matched
   element by element, and each pair of plain numbers is compared exactly with `Fraction`
   (`numbers_equal`) without sympy;
4. pairs still open go, in one batch, to math-verify in a warm worker process (`pool`), under
   the caller's deadline. Inputs that would make sympy build huge numbers (towers of powers,
   large factorials, very long strings) never go there: they are equal only as text.

Verdicts are cached by canonical pair; a verdict that a deadline cut short is not cached.

Conventions (the case file tests/grading_cases.py checks each):

- a decimal that is not exactly the other value counts as its approximation when the other is
  not itself written as a decimal, the decimal shows at least 4 significant digits and is
  within one unit of its last digit (0.3333 or 0.6667 for 1/3 and 2/3, 1.414 for sqrt(2);
  not 0.33, 3.14 for pi, or 16386.1 for 16386.16);
- a percentage stands for its number or its fraction (44\\% is 44 or 0.44); degree marks are
  dropped (45^\\circ is 45), degrees are not converted to radians;
- ``x=3`` is 3 when the other side is a bare value; two assignments need the same left side;
- bare lists and sets are unordered; tuples and intervals are ordered and keep their brackets;
  a tuple equals a one-row or one-column matrix with the same entries;
- a reference that is a letter A-E is a multiple-choice answer: ``(C)``, ``c``, ``C: 12`` match.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction

from rstar_pl.grading.normalize import normalize
from rstar_pl.grading.numeric import numbers_equal, parse_number
from rstar_pl.grading.pool import get_pool
from rstar_pl.grading.structure import compare_structures, parse_structure

__all__ = ["is_equivalent", "clear_cache", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds; includes a cold worker start on the first symbolic check
MAX_SYMBOLIC_CHARS = 400  # longer answers are compared as text only
_CACHE_SIZE = 1 << 16

_CHOICE_GOLD = re.compile(r"\(?([A-E])\)?")
_CHOICE_PRED = re.compile(r"\(?([A-Ea-e])(?:\)|[.:](?:.*)?)?", re.S)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_SIMPLE_LHS = re.compile(
    r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?(?:'*|\([A-Za-z,]*\))|\\[A-Za-z]+(?:_\{?[A-Za-z0-9]+\}?)?"
)
# Sympy would try to build these numbers in full: 10^{10^{10}}, 99999!, 2^{1234567}. Powers of
# symbols (e^{x^2}) and moderate numbers (2005^{1002}/2004!) are fine and go to the worker.
_TOWER = re.compile(r"\^\s*\{\s*\d+\s*\^|\^\s*\{[^{}]*\^\s*\{?\s*\d{2,}")
_BIG_FACTORIAL = re.compile(r"(?<!\d)\d{5,}\s*[)}]?\s*!|\\Gamma|\\binom\s*\{\s*\d{5,}")
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*[-+]?\d{6,}")


class _Cache:
    """A thread-safe LRU map from canonical (pred, gold) pairs to verdicts."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bool | None:
        with self._lock:
            verdict = self._data.get(key)
            if verdict is not None:
                self._data.move_to_end(key)
            return verdict

    def put(self, key: tuple[str, str], verdict: bool) -> None:
        with self._lock:
            self._data[key] = verdict
            self._data.move_to_end(key)
            if len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_cache = _Cache(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget cached verdicts and canonical forms (for benchmarks and tests)."""
    _cache.clear()
    normalize.cache_clear()


def _risky(s: str) -> bool:
    """Whether sympy might try to build an enormous number from ``s``."""
    return (
        len(s) > MAX_SYMBOLIC_CHARS
        or bool(_TOWER.search(s) or _BIG_FACTORIAL.search(s) or _BIG_EXPONENT.search(s))
        or s.count("{") > 60
    )


def _is_word(s: str) -> bool:
    """Plain text such as ``Monday`` or ``Yes`` (LaTeX commands removed), not a formula."""
    return bool(_WORD.fullmatch(s))


def _split_equation(s: str) -> tuple[str, str] | None:
    """(lhs, rhs) of ``x=3``, ``f(x)=2x``, ``a_1=5``; None if ``s`` is no such assignment."""
    if "=" not in s:
        return None
    parts = s.split("=")
    lhs, rhs = parts[0], parts[-1]
    if not rhs or not _SIMPLE_LHS.fullmatch(lhs):
        return None
    return lhs, rhs


class _Judge:
    """Settles pairs of scalars; pairs that need sympy are queued, then sent in one batch."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.known: dict[tuple[str, str], bool] = {}
        self.pending: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self.cut_short = False

    def fast(self, pred: str, gold: str) -> bool | None:
        """The verdict without sympy, or None when sympy must decide."""
        if pred == gold:
            return True
        ep, eg = _split_equation(pred), _split_equation(gold)
        if ep and eg:
            if ep[0] != eg[0]:
                return False
            pred, gold = ep[1], eg[1]
        elif ep and "=" not in gold:
            pred = ep[1]
        elif eg and "=" not in pred:
            gold = eg[1]
        if pred == gold:
            return True
        np_, ng = parse_number(pred), parse_number(gold)
        if np_ is not None and ng is not None:
            return numbers_equal(np_, ng)
        if _is_word(pred) or _is_word(gold):
            return pred.lower() == gold.lower()
        if _risky(pred) or _risky(gold):
            return False
        if "\\infty" in pred or "\\infty" in gold:
            return pred.lstrip("+") == gold.lstrip("+")
        return None

    def __call__(self, pred: str, gold: str) -> bool:
        key = (pred, gold)
        if key in self.known:
            return self.known[key]
        verdict = self.fast(pred, gold)
        if verdict is None:
            self.pending[key] = None
            return True  # optimistic while collecting; settled by `resolve`
        self.known[key] = verdict
        return verdict

    def resolve(self) -> None:
        """Send the queued pairs to a worker (gold first, as math-verify expects)."""
        if not self.pending:
            return
        pairs, self.pending = list(self.pending), {}
        results = get_pool().judge([(gold, pred) for pred, gold in pairs], self.deadline)
        for key, verdict in zip(pairs, results, strict=True):
            if verdict is None:
                self.cut_short = True
            self.known[key] = bool(verdict)


def _judge_canonical(pred: str, gold: str, deadline: float) -> tuple[bool, bool]:
    """(verdict, whether it is final) for two canonical answers."""
    if pred == gold:
        return True, True
    if not pred or not gold:
        return False, True
    if m := _CHOICE_GOLD.fullmatch(gold):
        p = _CHOICE_PRED.fullmatch(pred)
        return bool(p) and p.group(1).upper() == m.group(1), True
    pool = get_pool()
    if not pool.started:
        pool.start()  # in the background, so that workers are warm when a pair needs sympy
    tree_pred, tree_gold = parse_structure(pred), parse_structure(gold)
    judge = _Judge(deadline)
    # The first pass settles what it can and queues the pairs sympy must decide (counting them
    # as equal meanwhile); each later pass uses their verdicts. A pass after the first queues
    # more only when a verdict led the matching to pairs it had not looked at.
    verdict = compare_structures(tree_pred, tree_gold, judge)
    for _ in range(4):
        if not judge.pending:
            # A True stands even if some pair ran out of time; a False may not.
            return verdict, verdict or not judge.cut_short
        judge.resolve()
        verdict = compare_structures(tree_pred, tree_gold, judge)
    return False, False


def _as_text(answer: object, name: str) -> str | None:
    if answer is None or isinstance(answer, str):
        return answer
    if isinstance(answer, (int, float, Fraction)) and not isinstance(answer, bool):
        return str(answer)
    raise TypeError(f"is_equivalent: {name} must be a str (or None), got {type(answer).__name__}")


def is_equivalent(
    pred: str | None, gold: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    """Whether the predicted final answer ``pred`` means the same as the reference ``gold``.

    Both are final answers, not whole solutions (use `extract_answer` first). ``gold`` may be a
    list of acceptable answers. Returns within about ``timeout`` seconds on any input, from any
    thread or process, and never raises for odd strings: what cannot be decided in time is
    False. ``None`` or an empty prediction is never equivalent. The first symbolic check of a
    process also waits for the grading workers to start (once, a few seconds, outside
    ``timeout``; `warm_up` does it ahead of time).
    """
    if isinstance(gold, (list, tuple)):
        deadline = time.monotonic() + timeout
        return any(
            is_equivalent(pred, g, timeout=max(deadline - time.monotonic(), 0.0)) for g in gold
        )
    pred_text, gold_text = _as_text(pred, "pred"), _as_text(gold, "gold")
    if not pred_text or not gold_text or not pred_text.strip() or not gold_text.strip():
        return False
    if pred_text.strip() == gold_text.strip():
        return True
    deadline = time.monotonic() + max(timeout, 0.0)
    try:
        key = (normalize(pred_text), normalize(gold_text))
        cached = _cache.get(key)
        if cached is not None:
            return cached
        verdict, final = _judge_canonical(*key, deadline)
    except RecursionError:
        return False
    except Exception:  # a bug here must cost one verdict, not the caller's search or eval run
        logger.exception("is_equivalent failed on pred=%.200r gold=%.200r", pred_text, gold_text)
        return False
    if final:
        _cache.put(key, verdict)
    return verdict
