"""Answer extraction and equivalence (rstar_pl.grading)."""

from __future__ import annotations

import pytest

from rstar_pl.grading import extract_answer, extract_boxed, is_equivalent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}.", "5"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\fbox{x+1}", "x+1"),
        ("#### 72", "72"),
        ("The answer is 12.", "12"),
        ("nothing here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_boxed_unterminated_is_none():
    assert extract_boxed("\\boxed{" * 10_000) is None


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("0.5", "\\frac{1}{2}", True),
        ("\\dfrac{1}{2}", "\\frac12", True),
        ("15000", "\\$15,\\!000", True),
        ("3", "x=3", True),
        ("4", "x=3", False),
        ("-4n+10", "10-4n", True),
        ("(2,1)", "(1,2)", False),
    ],
)
def test_is_equivalent(pred, gold, expected):
    assert is_equivalent(pred, gold, timeout=30) is expected
