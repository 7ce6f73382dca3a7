"""Answer extraction and equivalence (rstar_pl.grading).

The equivalence cases live in tests/grading_cases.py with hand-worked verdicts, each checked
both ways round (a verdict must not depend on which answer is the reference); the adversarial
inputs below must come back within the timeout (plus slack for a busy 2-core machine) from the
main thread, other threads, thread pools and worker processes, without raising.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstar_pl.grading import extract_answer, extract_boxed, is_equivalent, warm_up
from rstar_pl.grading.arithmetic import evaluate
from rstar_pl.grading.extract import final_answer_text
from rstar_pl.grading.pool import get_pool

sys.path.insert(0, str(Path(__file__).parent))
from grading_cases import CASES  # noqa: E402

# Correctness tests give the symbolic path ample time: they test verdicts, not speed.
GENEROUS = 60.0
# Timing tests: every call returns within TIMEOUT + SLACK, SLACK covering a loaded 2-core machine.
TIMEOUT = 2.0
SLACK = 8.0


@pytest.fixture(scope="module", autouse=True)
def _warm_workers():
    assert warm_up(timeout=120), "the symbolic grading workers did not start"


# ---- extract_answer / extract_boxed ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the total is \\boxed{5}.", "5"),
        ("first \\boxed{1}, then \\boxed{2}", "2"),  # the last box wins
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces kept
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces are not groups
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed {7}", "7"),
        ("\\boxed{ 7 }", "7"),
        ("\\boxed 5", "5"),
        ("\\boxed{1} and \\boxed{2", "1"),  # an unclosed last box is skipped
        ("#### 72", "72"),
        ("She pays 3 * 24 = 72 dollars.\n#### 1,000\n", "1,000"),
        ("#### 5 \\boxed{6}", "6"),  # a box beats ####
        ("The answer is 12.", "12"),
        ("So the answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("Thus, the final answer is 3.5. I hope it is correct.", "3.5"),
        ("Final Answer: 7", "7"),
        ("**Final Answer:** 7", "7"),
        ("Work:\nAnswer: $3$", "3"),
        ("let me check my answer: first, 2+2=4", None),  # "answer:" only at a line's start
        ("the answer is 4, and then the answer is 9", "9"),
        ("no answer stated here", None),
        ("\\boxed{", None),
        ("", None),
        ("\\boxed{}", None),
        # one run of boxes is one answer list, as math-verify reads it
        ("so \\boxed{3}, \\boxed{5}.", "3, 5"),
        ("\\boxed{3} and \\boxed{5}", "3, 5"),
        ("so $x=\\boxed{3}$ or $x=\\boxed{5}$", "3, 5"),
        ("\\boxed{1} \\text{ or } \\boxed{-1}", "1, -1"),
        ("we get \\boxed{4}; checking, it must be \\boxed{5}", "5"),
        ("\\boxed{3}, \\boxed{}", "3"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a \\boxed{1} then \\boxed{2}", "2"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed{1} and \\boxed{2", "1"),
        ("no box", None),
        ("\\boxed{ a }", " a "),  # content as written: extract_answer strips it
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_the_search_reads_an_answer_step_as_the_harness_does():
    from rstar_pl.steps import END_OF_ANSWER, parse_step

    step = parse_step("<answer>So $x=\\boxed{3}$ or $x=\\boxed{5}$.", END_OF_ANSWER)
    assert step.answer == extract_answer(step.text) == "3, 5"
    assert is_equivalent(step.answer, "5, 3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\frac{3}{5}", "\\frac{3}{5}"),  # already an answer
        ("$x=1$, $y=2$", "$x=1$, $y=2$"),  # math only, no sentence around it
        ("Therefore the ratio is $\\frac{3}{5}$.", "\\frac{3}{5}"),
        ("The solutions are $x=2$ and $x=3$.", "x=2, x=3"),
        ("Since $a=2$, we get $b=7$.", "b=7"),
        ("All integers $n=3^{b}$, where $b$ is odd.", "All integers $n=3^{b}$, where $b$ is odd."),
        ("Since $2+3=5$, the final answer is $5$, as claimed.", "5"),
        ("The answer is 12 apples.", "12 apples"),
        ("It costs \\$5 in total", "It costs \\$5 in total"),  # \$ is no math delimiter
        ("Natalia sold 24 clips.\n#### 72", "72"),
        ("First \\boxed{1}, then \\boxed{2}", "2"),
    ],
)
def test_final_answer_text(text, expected):
    assert final_answer_text(text) == expected


def test_extraction_on_ten_thousand_nested_braces_is_linear():
    start = time.perf_counter()
    assert extract_boxed("\\boxed{" * 10_000) is None
    assert extract_answer("\\boxed{" + "{" * 10_000 + "}" * 10_001) == "{" * 10_000 + "}" * 10_000
    assert extract_answer("x" * 1_000_000) is None
    assert time.perf_counter() - start < SLACK


# ---- the case file ------------------------------------------------------------------------


def test_case_file_covers_every_category_both_ways():
    assert len(CASES) >= 500
    verdicts = Counter((category, expected) for category, _, _, expected in CASES)
    categories = {category for category, _, _, _ in CASES}
    required = {
        "number", "fraction", "dfrac", "left-right", "thousands", "units", "text", "dollar",
        "percent", "degrees", "sqrt", "pi", "scientific", "interval", "union", "tuple", "set",
        "matrix", "equation", "algebra", "choice",
        # the forms of issue "no false equal": near misses and the answer forms of real data
        "near-miss", "empty-set", "set-repeats", "reals", "repeating", "mixed", "currency",
        "named-tuple", "equation-solution", "inequality", "negated-inequality", "and-list",
        "multi-box", "prose", "gsm8k", "product", "complex",
    }  # fmt: skip
    assert required <= categories
    for category in required:
        assert verdicts[(category, True)] and verdicts[(category, False)], category
    pairs = {frozenset((p, g)) for _, p, g, _ in CASES}
    assert len(pairs) == len(CASES), "duplicate cases (in either order)"


@pytest.mark.parametrize(
    ("category", "pred", "gold", "expected"),
    CASES,
    ids=[f"{i:03d}-{c[0]}" for i, c in enumerate(CASES)],
)
def test_case(category, pred, gold, expected):
    assert is_equivalent(pred, gold, timeout=GENEROUS) is expected
    assert is_equivalent(gold, pred, timeout=GENEROUS) is expected, "the other way round"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}"),
        ("\\frac{1}{2006!}", "\\frac{1}{2004!}"),
    ],
)
def test_reported_false_equals_are_unequal(a, b):
    # Both pairs differ by a factor of 2 (1/2^98 = 2/2^99; 2006!/2004! = 2006*2005), and both
    # were judged equal because math-verify chops small differences in absolute terms.
    assert is_equivalent(a, b, timeout=GENEROUS) is False
    assert is_equivalent(b, a, timeout=GENEROUS) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\frac{1}{2^{98}}", (Fraction(1, 2**98), 0)),
        ("\\frac{2005^{1002}}{2004!}", (Fraction(2005**1002, math.factorial(2004)), 0)),
        ("2^{2^{2^{2}}}", (65536, 0)),
        ("-2^2", (-4, 0)),
        ("2\\cdot 3^{4}-1", (161, 0)),
        ("(2)(3)(7)", (42, 0)),
        ("7\\frac{3}{4}", (Fraction(31, 4), 0)),
        ("0.1\\overline{6}", (Fraction(1, 6), 0)),
        ("1.2\\times10^{-3}", (Fraction(12, 10_000), 0)),
        ("i(2-i)", (1, 2)),  # 2i - i^2
        ("\\frac{5}{2+i}", (2, -1)),  # 5(2-i)/((2+i)(2-i)) = 5(2-i)/5
        ("i^{2023}", (0, -1)),  # 2023 = 4*505 + 3
        ("\\frac{3}{4}\\div\\frac{1}{2}", (Fraction(3, 2), 0)),
    ],
)
def test_arithmetic_is_exact(text, expected):
    assert evaluate(text) == (Fraction(expected[0]), Fraction(expected[1]))


@pytest.mark.parametrize(
    "text",
    [
        "99999!",  # 450,000 digits
        "2^{2^{2^{2^{2^{2}}}}}",
        "10^{10^{10}}",
        "9^{9^{9}}",
        "(10^{5000})^{5000}",
        "x+1", "\\sqrt{2}", "\\pi", "2^{x}", "1,2",  # not plain arithmetic
        "2^10", "1/2i", "0^{0}", "\\frac{1}{0}",  # ambiguous or undefined
    ],
)  # fmt: skip
def test_arithmetic_leaves_the_rest_undecided_at_once(text):
    start = time.perf_counter()
    assert evaluate(text) is None
    assert time.perf_counter() - start < SLACK


def test_gold_may_be_a_list_of_acceptable_answers():
    assert is_equivalent("(0,0)", ["(10,0)", "(0,0)"])
    assert not is_equivalent("(0,10)", ["(10,0)", "(0,0)"])


def test_missing_or_odd_inputs():
    assert is_equivalent(None, "5") is False
    assert is_equivalent("5", "") is False
    assert is_equivalent(5, "5.0") is True
    with pytest.raises(TypeError, match="pred must be a str"):
        is_equivalent({"a": 1}, "5")


def test_a_verdict_cut_short_is_not_cached():
    pred, gold = "(x+1)^2-1", "x^2+2x"  # needs sympy
    assert is_equivalent(pred, gold, timeout=0.0) is False  # no time: cannot confirm
    assert is_equivalent(pred, gold, timeout=GENEROUS) is True


# ---- bounded time on adversarial inputs ------------------------------------------------

ADVERSARIAL = [
    ("10^{10^{10}}", "5"),
    ("10^{10^{10}}+1", "10^{10^{10}}"),
    ("9999!", "7"),
    ("9999!", "9998!\\cdot 9999"),
    ("99999!", "1"),
    ("2^{2^{2^{2^{2^{2}}}}}", "3"),
    ("{" * 10_000 + "1" + "}" * 10_000, "1"),
    ("\\frac{" * 5_000, "1"),
    ("(" * 10_000 + ")" * 10_000, "()"),
    ("\\sqrt{" * 3_000 + "2" + "}" * 3_000, "2"),
    ("1" * 100_000, "1" + "0" * 99_999),
    ("1e999999999", "10^{999999999}"),
    ("", ""),
    ("", "5"),
    ("the quick brown fox jumps over the lazy dog", "5"),
    ("\\text{" + "a" * 50_000 + "}", "a"),
    (",".join(["1"] * 5_000), ",".join(["1"] * 5_000) + ",2"),
    ("\\begin{pmatrix}" + "\\\\".join(["1&2"] * 2_000) + "\\end{pmatrix}", "1"),
    ("x^{x^{x^{x^{x}}}}", "y^{y}"),
    ("\\int_0^1 x^{100000} dx", "0"),
    ("\\{x|" * 2_000, "\\{1\\}"),
    ("(" + ",".join(str(i) for i in range(3_000)) + ")", "(1,2)"),
    ("(x+y+z)^{50}", "(z+y+x)^{50}+1"),
    ("\\frac{1}{99999!}", "\\frac{1}{99998!}"),
    ("2^{2^{2^{2^{2^{2}}}}}+1", "2^{2^{2^{2^{2^{2}}}}}"),
    ("\\frac{1}{2^{9999999}}", "0"),
    ("e^{e^{e^{e^{10}}}}", "e^{e^{e^{e^{10}}}}+1"),
    ("x^{2^{100}}=1", "x=1"),  # an equation sympy cannot solve in time
    ("\\boxed{1}, " * 3_000, "1"),
]


def _timed(pred: str, gold: str) -> tuple[object, float]:
    start = time.perf_counter()
    verdict = is_equivalent(pred, gold, timeout=TIMEOUT)
    return verdict, time.perf_counter() - start


@pytest.mark.parametrize(
    ("pred", "gold"), ADVERSARIAL, ids=[f"adv{i}" for i in range(len(ADVERSARIAL))]
)
def test_adversarial_input_returns_in_time_on_the_main_thread(pred, gold):
    verdict, seconds = _timed(pred, gold)
    assert isinstance(verdict, bool)
    assert seconds < TIMEOUT + SLACK


def test_adversarial_inputs_return_in_time_on_another_thread():
    results: list[tuple[object, float]] = []
    thread = threading.Thread(target=lambda: results.extend(_timed(p, g) for p, g in ADVERSARIAL))
    thread.start()
    thread.join(timeout=len(ADVERSARIAL) * (TIMEOUT + SLACK))
    assert not thread.is_alive()
    assert len(results) == len(ADVERSARIAL)
    for verdict, seconds in results:
        assert isinstance(verdict, bool)
        assert seconds < TIMEOUT + SLACK


def test_concurrent_calls_from_a_thread_pool():
    # Hard inputs and ordinary ones mixed: each call keeps its own deadline, and a worker killed
    # for one call does not spoil the verdicts of the others.
    ordinary = [(p, g, e) for c, p, g, e in CASES if c in ("algebra", "sqrt", "tuple")]
    jobs = [(p, g, None) for p, g in ADVERSARIAL] + ordinary
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda job: (job, *_timed(job[0], job[1])), jobs))
    for _job, verdict, seconds in outcomes:
        assert isinstance(verdict, bool)
        assert seconds < TIMEOUT + SLACK
    # Ordinary pairs decided under load may only lose a True to a deadline, never flip a False.
    for (pred, gold, expected), verdict, _ in outcomes:
        if expected is False:
            assert verdict is False, (pred, gold)
    # With time again, every ordinary verdict is right.
    for pred, gold, expected in ordinary:
        assert is_equivalent(pred, gold, timeout=GENEROUS) is expected, (pred, gold)


def test_a_worker_stuck_past_its_deadline_is_replaced():
    pool = get_pool()
    start = time.monotonic()
    # Sent straight to a worker: expanding a power of degree 20,000 overruns any deadline here.
    assert pool.judge([("(x+1)^{20000}", "x^{20000}+1")], start + TIMEOUT) == [None]
    assert time.monotonic() - start < TIMEOUT + SLACK
    assert pool.judge([("2\\sqrt{2}", "\\sqrt{8}")], time.monotonic() + GENEROUS) == [True]


LATEX_PIECES = [
    "\\frac{", "}", "{", "\\sqrt", "\\pi", "x", "=", "<", "\\leq ", "(", ")", "[", "]",
    "\\{", "\\}", ",", "1", "2", "0.5", "-", "^", "\\%", "^\\circ", "\\text{", "cm",
    "\\left(", "\\right)", "\\cup", "\\infty", "\\pm", "|", "\\begin{pmatrix}",
    "\\end{pmatrix}", "&", "\\\\", "!", "i", ".", "$", "\\boxed{", "#### ", "\\!", " ",
    "10^{", "The answer is ",
]  # fmt: skip
latex_soup = st.lists(st.sampled_from(LATEX_PIECES), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(latex_soup, latex_soup)
def test_any_latex_soup_gets_a_bool_in_time_and_equals_itself(pred, gold):
    verdict, seconds = _timed(pred, gold)
    assert isinstance(verdict, bool)
    assert seconds < TIMEOUT + SLACK
    if pred.strip():
        assert is_equivalent(pred, pred, timeout=TIMEOUT)
    found = extract_answer(pred)
    assert found is None or found in pred


def _check_in_child(_: int) -> tuple[bool, bool, bool, float]:
    start = time.perf_counter()
    hard = is_equivalent("10^{10^{10}}", "5", timeout=TIMEOUT)
    symbolic = is_equivalent("\\frac{1}{\\sqrt2}", "\\frac{\\sqrt{2}}{2}", timeout=GENEROUS)
    numeric = is_equivalent("0.5", "\\frac{1}{2}", timeout=TIMEOUT)
    return hard, symbolic, numeric, time.perf_counter() - start


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_inside_worker_processes(method):
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as executor:
        results = list(executor.map(_check_in_child, range(2)))
    for hard, symbolic, numeric, _seconds in results:
        assert (hard, symbolic, numeric) == (False, True, True)


def test_inside_daemonic_pool_workers():
    # multiprocessing.Pool workers are daemons, which may not start multiprocessing children;
    # the grading workers are plain subprocesses, so the symbolic path works there too.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        hard, symbolic, numeric, _ = pool.apply(_check_in_child, (0,))
    assert (hard, symbolic, numeric) == (False, True, True)
