"""Speed and accuracy of rstar_pl.grading.is_equivalent against plain math-verify.

    python benchmarks/bench_grading.py [--repeats 5] [--timeout 5]

On the hand-checked cases of tests/grading_cases.py, side by side in one process:

- ``is_equivalent(pred, gold)`` with its caches cleared before every pass (the work a new
  pair costs), after `warm_up` (worker start excluded, reported separately), and again with
  warm caches (a pair seen before, as in a search that grades the same answers often);
- the baseline ``math_verify.verify(parse(gold), parse(pred))`` in-process on the main thread
  (math-verify's own signal timeouts on, as its docs recommend there).

Prints checks per second, median and worst time per check (medians over ``--repeats``
passes), the ratios, the times of checks settled without sympy and of those that needed a
symbolic worker, and the accuracy of both on the cases, overall and per category. The machine may be shared: read the medians.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from grading_cases import CASES  # noqa: E402

from rstar_pl.grading import clear_cache, is_equivalent, warm_up  # noqa: E402
from rstar_pl.grading.pool import get_pool  # noqa: E402


def _ours(timeout: float):
    def check(pred: str, gold: str) -> bool:
        return is_equivalent(pred, gold, timeout=timeout)

    return check


def _math_verify():
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def check(pred: str, gold: str) -> bool:
        # Answers are bare LaTeX: wrap them as math so that parse finds them (math-verify's
        # usual input is a whole solution with $...$ or \boxed{}).
        return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))

    return check


def _pass(check, clear: bool) -> tuple[list[float], list[bool], list[bool]]:
    """Times and verdicts of one pass over the cases, and which checks used a worker."""
    if clear:
        clear_cache()
    pool = get_pool()
    times, verdicts, symbolic = [], [], []
    for _, pred, gold, _ in CASES:
        requests = pool.requests
        start = time.perf_counter()
        verdicts.append(check(pred, gold))
        times.append(time.perf_counter() - start)
        symbolic.append(pool.requests > requests)
    return times, verdicts, symbolic


def _summary(name: str, passes: list[tuple[list[float], list[bool], list[bool]]]) -> dict:
    totals = [sum(t) for t, _, _ in passes]
    per_check = [statistics.median(t) for t, _, _ in passes]
    worst = [max(t) for t, _, _ in passes]
    verdicts = passes[-1][1]
    correct = [v == expected for v, (_, _, _, expected) in zip(verdicts, CASES, strict=True)]
    return {
        "name": name,
        "checks_per_s": len(CASES) / statistics.median(totals),
        "median_ms": 1e3 * statistics.median(per_check),
        "mean_ms": 1e3 * statistics.median(totals) / len(CASES),
        "worst_ms": 1e3 * statistics.median(worst),
        "accuracy": sum(correct) / len(CASES),
        "correct": correct,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="passes over the cases")
    parser.add_argument("--timeout", type=float, default=5.0, help="is_equivalent timeout (s)")
    args = parser.parse_args()

    start = time.perf_counter()
    ready = warm_up(timeout=120)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {len(CASES)} cases, {args.repeats} passes"
    )
    print(f"warm_up (start {get_pool().max_workers} workers): {time.perf_counter() - start:.2f} s"
          f" ({'ready' if ready else 'NOT ready'})")  # fmt: skip

    ours = _ours(args.timeout)
    cold = [_pass(ours, clear=True) for _ in range(args.repeats)]
    cached = [_pass(ours, clear=False) for _ in range(args.repeats)]
    baseline_check = _math_verify()
    baseline = [_pass(baseline_check, clear=False) for _ in range(args.repeats)]

    rows = [
        _summary("is_equivalent (uncached)", cold),
        _summary("is_equivalent (cached)", cached),
        _summary("math_verify parse+verify", baseline),
    ]
    print()
    print(
        f"{'':28} {'checks/s':>10} {'median ms':>10} {'mean ms':>9} {'worst ms':>9} {'accuracy':>9}"
    )
    for r in rows:
        print(
            f"{r['name']:28} {r['checks_per_s']:10.0f} {r['median_ms']:10.3f} {r['mean_ms']:9.3f}"
            f" {r['worst_ms']:9.1f} {r['accuracy']:9.1%}"
        )
    ours_row, cached_row, base_row = rows
    print()
    print(f"speed-up, uncached vs math-verify: {ours_row['checks_per_s'] / base_row['checks_per_s']:.1f}x "
          f"throughput, {base_row['median_ms'] / ours_row['median_ms']:.0f}x median check")  # fmt: skip
    print(
        f"speed-up, cached vs math-verify:   {cached_row['checks_per_s'] / base_row['checks_per_s']:.0f}x throughput"
    )
    # Per case, the median over passes; then split by path.
    per_case = [statistics.median(t[i] for t, _, _ in cold) for i in range(len(CASES))]
    used_worker = cold[-1][2]
    fast = [t for t, w in zip(per_case, used_worker, strict=True) if not w]
    slow = [t for t, w in zip(per_case, used_worker, strict=True) if w]
    print(f"fast path (no sympy): {len(fast)} of {len(CASES)} checks, median "
          f"{1e3 * statistics.median(fast):.3f} ms, worst {1e3 * max(fast):.1f} ms")  # fmt: skip
    if slow:
        print(f"symbolic worker:      {len(slow)} checks, median {1e3 * statistics.median(slow):.1f} ms,"
              f" worst {1e3 * max(slow):.1f} ms")  # fmt: skip
    worst_case = CASES[max(range(len(CASES)), key=per_case.__getitem__)]
    print(f"slowest case: {worst_case[1]!r} vs {worst_case[2]!r} ({1e3 * max(per_case):.1f} ms)")

    by_category: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for (category, *_), a, b in zip(CASES, ours_row["correct"], base_row["correct"], strict=True):
        by_category[category].append((a, b))
    print()
    print(f"{'category':12} {'cases':>5} {'ours':>6} {'math-verify':>12}")
    for category, marks in by_category.items():
        n = len(marks)
        print(f"{category:12} {n:5d} {sum(a for a, _ in marks):6d} {sum(b for _, b in marks):12d}")
    for row in (ours_row, base_row):
        wrong = [c for c, ok in zip(CASES, row["correct"], strict=True) if not ok]
        if wrong:
            print(f"\n{row['name']} disagrees with the expected verdict on:")
            for category, pred, gold, expected in wrong:
                print(f"  [{category}] {pred!r} vs {gold!r}: expected {expected}")


if __name__ == "__main__":
    main()
