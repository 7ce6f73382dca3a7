"""Answer grading: find the final answer in a model's output and decide whether it is right.

One module serves the search (terminal rewards) and the harness (metrics)::

    from rstar_pl.grading import extract_answer, is_equivalent
    is_equivalent(extract_answer(completion), "\\frac{1}{2}")

`is_equivalent` is bounded in time on any input, from any thread or process: see
`equivalence` for the order of checks and `pool` for the symbolic worker processes.
"""

from rstar_pl.grading.equivalence import DEFAULT_TIMEOUT, clear_cache, is_equivalent
from rstar_pl.grading.extract import (
    extract_answer,
    extract_boxed,
    extract_boxed_answers,
    final_answer_text,
)
from rstar_pl.grading.normalize import normalize
from rstar_pl.grading.pool import get_pool


def warm_up(timeout: float | None = 30.0) -> bool:
    """Start the symbolic workers now and wait until they are ready (at most ``timeout``
    seconds), so that the first symbolic check does not pay for their start. Optional."""
    import time

    return get_pool().warm(None if timeout is None else time.monotonic() + timeout)


__all__ = [
    "extract_answer",
    "extract_boxed",
    "extract_boxed_answers",
    "final_answer_text",
    "is_equivalent",
    "normalize",
    "warm_up",
    "clear_cache",
    "DEFAULT_TIMEOUT",
]
