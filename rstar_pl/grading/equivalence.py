"""`is_equivalent`: whether two final answers are mathematically the same.

The order of work, cheapest first:

1. both strings are normalised (`normalize`, which also reads the answer out of a whole
   solution or sentence); equal canonical strings are equal answers;
2. multiple-choice letters (`choice`), answers that name different units (`units`), ``x=3``
   against ``3`` (and a statement ``\\log_{2}(8)=3`` against ``3``), and words
   (``\\text{Monday}``) are settled here; what sympy would misread (words run together,
   numerals with a base subscript, elided series ``\\cdots``, relation chains that are no
   assignment) is compared as text only;
3. the answer's shape (`parse_structure`: lists, sets, unions, tuples, intervals, matrices) is
   compared element by element (`matching`; unions as real sets, `realsets`), and each pair of
   numbers is compared exactly (`numeric`, `arithmetic`: rationals, powers, factorials and
   ``i`` as exact Gaussian rationals) without sympy;
4. pairs still open go, in one batch, to math-verify in a warm worker process (`pool`), under
   the caller's deadline; there (`_symbolic`), two *numbers* are compared by value relative
   to their size, never by math-verify's own test, which chops differences below about 1e-15
   in absolute terms and made ``1/2^{98}`` equal ``1/2^{99}``; an equal verdict on expressions
   with variables must survive evaluation at sample points; one equation against values
   (``x^2=4`` against ``x=\\pm 2``) is solved.

Undecided is unequal: an input that would make sympy build a huge number (a tower of powers, a
large factorial, a long string) is equal only as text, or exactly where `arithmetic` can
evaluate it within its bound; a check cut short by its deadline is False (and not cached).
Verdicts are cached by canonical pair.

Conventions (the case file tests/grading_cases.py checks each, both ways round):

- a decimal that is not exactly the other value counts as its approximation when the other is
  not itself written as a decimal, the decimal shows at least 4 significant digits and is the
  other value rounded or truncated there (0.3333 or 0.6667 for 1/3 and 2/3, 1.414 for sqrt(2);
  not 0.33, 3.14 for pi, 1.4143 for sqrt(2) or 16386.1 for 16386.16); repeating decimals
  (``0.\\overline{3}``) are exact;
- a percentage stands for its number or its fraction (44\\% is 44 or 0.44) against a number
  that is not one; two percentages compare as written; degree marks are dropped (45^\\circ is
  45), degrees are not converted to radians; units are dropped unless both answers name known
  units that differ (5 cm is not 5 m; no unit is converted);
- ``x=3`` is 3 when the other side is a bare value; two assignments need the same left side;
- lists, sets and unions are sets (order and repeats do not count); tuples and intervals are
  ordered and keep their brackets (see `matching`, which also says how named tuples compare);
- ``i`` is the imaginary unit; an integer written against a fraction (``7\\frac{3}{4}``,
  ``7 3/4``) is a mixed number;
- a letter A-E is a multiple-choice answer (see `choice`): ``(C)``, ``c``, ``C: 12`` match C.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from rstar_pl.grading.arithmetic import evaluate
from rstar_pl.grading.choice import Choice, parse_choice
from rstar_pl.grading.matching import compare_structures
from rstar_pl.grading.normalize import normalize
from rstar_pl.grading.numeric import Number, numbers_equal, parse_number
from rstar_pl.grading.pool import get_pool
from rstar_pl.grading.realsets import involves_union, real_set
from rstar_pl.grading.structure import Node, parse_structure, split_top_level
from rstar_pl.grading.units import unit_of

__all__ = ["is_equivalent", "clear_cache", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds; includes a cold worker start on the first symbolic check
MAX_SYMBOLIC_CHARS = 400  # longer answers are compared as text only
_CACHE_SIZE = 1 << 16

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_VARIABLE_LETTER = re.compile(r"[A-Za-df-hj-z]")  # any letter but e and i
_PROSE = re.compile(r"[A-Za-z]{5,}")
_RELATION_SIGN = re.compile(r"[<>=]|\\[lg]eq?(?![A-Za-z])")
_ODD = re.compile(r"[@#?\":]|\\(?:c|l)?dots(?![A-Za-z])|(?<=\d)_|_\{[^{}]*[(),[\]]")
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
    for cached in (normalize, parse_choice, unit_of, _number):
        cached.cache_clear()


@lru_cache(maxsize=1 << 16)
def _number(s: str) -> Number | None:
    """The exact number a canonical scalar denotes (`parse_number`, else `arithmetic`)."""
    n = parse_number(s)
    if n is not None:
        return n
    value = evaluate(s)
    return None if value is None else Number(value[0], imag=value[1])


def _real(s: str) -> Fraction | None:
    n = _number(s)
    return n.value if n is not None and not n.imag and not n.percent else None


def _is_equation(s: str) -> bool:
    """One equation to solve (``2x=10``, ``x^2-5x+6=0``), not an assignment like ``x=3``,
    a named tuple or a list."""
    if "=" not in s or "\\neq" in s or len(split_top_level(s)) > 1:
        return False
    sides = split_top_level(s, "=")
    if len(sides) != 2:
        return False
    lhs = sides[0]
    return _split_equation(s) is None and not (lhs.startswith("(") and "," in lhs)


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


def _variable_free(s: str) -> bool:
    """No letter outside LaTeX commands, except e and i (``\\log_{6}(216)``, ``i^{4}``)."""
    return not _VARIABLE_LETTER.search(_COMMAND.sub("", s))


def _split_equation(s: str) -> tuple[str, str, str] | None:
    """(lhs, middle, rhs) of an assignment ``x=3``, ``f(x)=2x``, ``a_1=5``, of a statement
    ``\\log_{6}(216)=3`` (a left side without variables), or of a chain ``x=\\frac{6}{2}=3``
    whose middle parts hold no variable (``middle`` is "" without one; in ``x=0orx=2`` the
    middle is not a value); None if ``s`` is none of these."""
    if "=" not in s:
        return None
    parts = split_top_level(s, "=")  # not the = of \\sum_{k=1}
    if len(parts) < 2:
        return None
    lhs, rhs = parts[0], parts[-1]
    if not lhs or not rhs or not (_SIMPLE_LHS.fullmatch(lhs) or _variable_free(lhs)):
        return None
    middle = parts[1:-1]
    if not all(_variable_free(m) for m in middle):
        return None
    return lhs, "=".join(middle), rhs


def _text_only(s: str) -> bool:
    """Answers sympy would misread, compared as text only: too big (see `_risky`), words run
    together (``Solutionis:[x=1]``, read as products of letters), numerals with a subscript
    (``443_4``, whose subscript math-verify drops), elided terms (``1+x+\\cdots``), odd
    characters (a colon: ``4:30``, which math-verify reads as 4), unbalanced braces, subscripts that hold brackets (``I_{(-1,1)}``), and
    relation chains that are no assignment (``x=0orx=2``)."""
    if _risky(s) or _PROSE.search(_COMMAND.sub(" ", s)) or _ODD.search(s):
        return True
    if s.count("{") != s.count("}"):
        return True  # a fragment
    return any(
        len(split_top_level(part, "=")) > 2 and _split_equation(part) is None
        for part in split_top_level(s)
    )


class _Judge:
    """Settles pairs of scalars; pairs that need sympy are queued, then sent in one batch."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.known: dict[tuple[str, str], bool] = {}
        self.pending: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self.cut_short = False

    def fast(self, pred: str, gold: str) -> tuple[bool | None, tuple[str, str]]:
        """The verdict without sympy (None when sympy must decide), and the pair sympy would
        decide: ``x=3`` against ``3`` is ``3`` against ``3``."""
        if pred == gold:
            return True, (pred, gold)
        ep, eg = _split_equation(pred), _split_equation(gold)
        if ep and eg:
            if ep[0] != eg[0] or (ep[1] and eg[1] and ep[1] != eg[1]):
                return False, (pred, gold)  # other names, or two chains through other values
            pred, gold = ep[2], eg[2]
        elif ep and "=" not in gold:
            pred = ep[2]
        elif eg and "=" not in pred:
            gold = eg[2]
        if pred == gold:
            return True, (pred, gold)
        np_, ng = _number(pred), _number(gold)
        if np_ is not None and ng is not None:
            return numbers_equal(np_, ng), (pred, gold)
        if _is_word(pred) or _is_word(gold):
            return pred.lower() == gold.lower(), (pred, gold)
        if _text_only(pred) or _text_only(gold):
            return False, (pred, gold)
        if "\\infty" in pred or "\\infty" in gold:
            return pred.lstrip("+") == gold.lstrip("+"), (pred, gold)
        return None, (pred, gold)

    def __call__(self, pred: str, gold: str) -> bool | None:
        key = (pred, gold)
        if key in self.known:
            return self.known[key]
        verdict, reduced = self.fast(pred, gold)
        if verdict is None:
            if reduced in self.known:
                verdict = self.known[key] = self.known[reduced]
                return verdict
            self.pending[reduced] = None  # settled by `resolve`, in one batch with the others
            return None
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


_PASSES = 6  # worker round trips for one pair of answers, at most


def _judge_canonical(pred: str, gold: str, deadline: float) -> tuple[bool, bool]:
    """(verdict, whether it is final) for two canonical answers."""
    if pred == gold:
        return True, True
    if not pred or not gold:
        return False, True
    if any(":" in s and _RELATION_SIGN.search(s) for s in (pred, gold)):
        return False, True  # a label and its value ("-9\\leq x\\leq 0:[-9,0]"): text only
    pool = get_pool()
    if not pool.started:
        pool.start()  # in the background, so that workers are warm when a pair needs sympy
    judge = _Judge(deadline)
    if _is_equation(pred) or _is_equation(gold):
        # An equation against its solutions: the worker solves it, so the answer stays whole.
        tree_pred, tree_gold = Node("scalar", pred), Node("scalar", gold)
    else:
        tree_pred, tree_gold = parse_structure(pred), parse_structure(gold)
        if involves_union(tree_pred) or involves_union(tree_gold):
            set_pred, set_gold = real_set(tree_pred, _real), real_set(tree_gold, _real)
            if set_pred is not None and set_gold is not None:
                return set_pred == set_gold, True
    # The first pass settles what it can and queues every pair sympy must decide (a verdict
    # that depends on one is None meanwhile); each later pass uses their verdicts. A pass after
    # the first queues more only when a verdict led the matching to pairs it had not looked at.
    verdict = compare_structures(tree_pred, tree_gold, judge)
    for _ in range(_PASSES):
        if verdict is not None or not judge.pending:
            break
        judge.resolve()
        verdict = compare_structures(tree_pred, tree_gold, judge)
    if verdict is None:
        return False, False
    # A True stands even if some pair ran out of time; a False may not.
    return verdict, verdict or not judge.cut_short


def _choice_verdict(
    pred: Choice | None, gold: Choice | None, pred_text: str, gold_text: str, deadline: float
) -> bool | None:
    """Letters against letters; a letter's option text against a plain answer (see `choice`);
    None where no choice is involved after all (lower-case letters may be variables)."""
    if pred is not None and gold is not None:
        return pred.letter == gold.letter if pred.strong or gold.strong else None
    lettered, plain = (pred, gold_text) if pred is not None else (gold, pred_text)
    if not lettered.strong:
        return None
    if not lettered.text:
        return False
    remaining = max(deadline - time.monotonic(), 0.0)
    if pred is not None:
        return is_equivalent(lettered.text, plain, timeout=remaining)
    return is_equivalent(plain, lettered.text, timeout=remaining)


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
        choices = parse_choice(pred_text), parse_choice(gold_text)
        if choices != (None, None):
            verdict = _choice_verdict(*choices, pred_text, gold_text, deadline)
            if verdict is not None:
                return verdict
        units = unit_of(pred_text), unit_of(gold_text)
        if None not in units and units[0] != units[1]:
            return False
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
