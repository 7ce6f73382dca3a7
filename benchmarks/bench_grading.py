"""Speed and accuracy of rstar_pl.grading.is_equivalent against plain math-verify.

    python benchmarks/bench_grading.py [--repeats 5] [--timeout 5] [--references DIR]

On the hand-checked cases of tests/grading_cases.py, side by side in one process:

- ``is_equivalent(pred, gold)`` with its caches cleared before every pass (the work a new
  pair costs), after `warm_up` (worker start excluded, reported separately), and again with
  warm caches (a pair seen before, as in a search that grades the same answers often);
- the baseline ``math_verify.verify(parse(gold), parse(pred))`` in-process on the main thread
  (math-verify's own signal timeouts on, as its docs recommend there). A bare answer is
  wrapped in ``$...$`` for `parse`; a text that already holds ``$`` (not ``\\$``) or ``\\boxed`` is passed as
  it is, since that is math-verify's usual input.

Prints checks per second, median and worst time per check (medians over ``--repeats``
passes), the ratios, the times of checks settled without sympy and of those that needed a
symbolic worker, and the accuracy of both on the cases, overall, per category and with the
two arguments swapped (is_equivalent is meant to be symmetric; math-verify says it is not).
These are the cases the module was written against: not a held-out score.

With ``--references DIR`` (default: ``$RSTAR_FULL_DATA/benchmarks`` or ``../shared/data/
benchmarks``, when there),
also draws 3,000 random pairs of *different* reference answers from MATH, MATH500,
OlympiadBench and Gaokao (seeded) and prints every pair judged equal, to be read by hand: a
pair of different strings may still be the same value (``\\frac12`` and ``0.5``); and
``--mutants`` (1,000) of those references against themselves with one digit changed, again
printing every pair judged equal.
The machine may be shared: read the medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
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

    def as_math(text: str) -> str:
        # A bare answer is wrapped as math so that parse finds it; a solution or sentence with
        # $...$ or \boxed{} is math-verify's usual input and goes as it is.
        return text if re.search(r"(?<!\\)\$", text) or "\\boxed" in text else f"${text}$"

    def check(pred: str, gold: str) -> bool:
        return bool(verify(parse(as_math(gold)), parse(as_math(pred))))

    return check


def _pass(check, clear: bool, swap: bool = False) -> tuple[list[float], list[bool], list[bool]]:
    """Times and verdicts of one pass over the cases, and which checks used a worker."""
    if clear:
        clear_cache()
    pool = get_pool()
    times, verdicts, symbolic = [], [], []
    for _, pred, gold, _ in CASES:
        if swap:
            pred, gold = gold, pred
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


_REFERENCE_FILES = (
    "MATH_test.json",
    "math500_test.json",
    "olympiadbench_test.json",
    "gaokao2023en_test.json",
)


def _random_reference_pairs(folder: Path, n: int, timeout: float, seed: int = 0) -> None:
    """Judge ``n`` random pairs of different reference answers; print the pairs called equal."""
    pool = _reference_answers(folder)
    if pool is None:
        return
    rng = random.Random(seed)
    equal, start = [], time.perf_counter()
    for _ in range(n):
        a, b = rng.sample(pool, 2)
        if is_equivalent(a, b, timeout=timeout):
            equal.append((a, b))
    seconds = time.perf_counter() - start
    print(
        f"\nrandom reference pairs: {n} pairs of different answers out of {len(pool)} distinct "
        f"references (seed {seed}), {n / seconds:.0f} checks/s; judged equal: {len(equal)}"
    )
    for a, b in equal:
        print(f"  {a!r} = {b!r}")


def _reference_answers(folder: Path, names=_REFERENCE_FILES) -> list[str] | None:
    answers: set[str] = set()
    for name in names:
        path = folder / name
        if not path.is_file():
            print(f"reference answers: {path} is missing; skipped")
            return None
        for record in json.loads(path.read_text(encoding="utf-8")):
            answer = record.get("answer")
            values = answer if isinstance(answer, list) else [answer]
            answers.update(str(v).strip() for v in values if str(v).strip())
    return sorted(answers)


def _one_digit_mutants(folder: Path, n: int, timeout: float, seed: int = 0) -> None:
    """Each of ``n`` random references against itself with one digit changed (both ways
    round); print the pairs judged equal. Most such pairs differ in value; a few do not (a
    digit inside a word, a mutated term that cancels), so read the list."""
    answers = _reference_answers(folder)
    if answers is None:
        return
    rng = random.Random(seed)
    equal, count, start = [], 0, time.perf_counter()
    for a in rng.sample(answers, min(n, len(answers))):
        digits = [i for i, c in enumerate(a) if c.isdigit()]
        if not digits:
            continue
        i = rng.choice(digits)
        b = a[:i] + str((int(a[i]) + rng.randint(1, 9)) % 10) + a[i + 1 :]
        count += 1
        if is_equivalent(a, b, timeout=timeout) or is_equivalent(b, a, timeout=timeout):
            equal.append((a, b))
    seconds = time.perf_counter() - start
    print(
        f"\none-digit mutants: {count} references against themselves with one digit changed "
        f"(seed {seed}), {2 * count / seconds:.0f} checks/s; judged equal: {len(equal)}"
    )
    for a, b in equal:
        print(f"  {a!r} = {b!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="passes over the cases")
    parser.add_argument("--timeout", type=float, default=5.0, help="is_equivalent timeout (s)")
    # The full data copy, where the tests' optional full-data checks look for it.
    full_data = Path(os.environ.get("RSTAR_FULL_DATA") or ROOT.parent / "shared" / "data")
    default_refs = full_data / "benchmarks"
    parser.add_argument(
        "--references",
        type=Path,
        default=default_refs if default_refs.is_dir() else None,
        help="folder of rStar-format benchmark files for the random-pairs check",
    )
    parser.add_argument("--pairs", type=int, default=3000, help="random reference pairs")
    parser.add_argument("--mutants", type=int, default=1000, help="one-digit mutants")
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
    swapped = {"is_equivalent": _pass(ours, clear=True, swap=True)[1]}
    swapped["math_verify"] = _pass(baseline_check, clear=False, swap=True)[1]

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

    print()
    for name, verdicts in swapped.items():
        right = sum(v == c[3] for v, c in zip(verdicts, CASES, strict=True))
        print(f"accuracy with pred and gold swapped, {name}: {right / len(CASES):.1%}")

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
    if args.references is not None:
        _random_reference_pairs(args.references, args.pairs, args.timeout)
        _one_digit_mutants(args.references, args.mutants, args.timeout)


if __name__ == "__main__":
    main()
