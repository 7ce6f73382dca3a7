"""How fast rstar_pl.sandbox runs typical step programs, against two baselines.

    python benchmarks/bench_sandbox.py [--repeats 5] [--fresh-rounds 1]

A fixed mix of programs shaped like rStar-Math's code steps (plain arithmetic,
sympy solving, numpy), each importing what it uses as model code does, run by:

- the sandbox, one ``run`` at a time, and all at once with ``run_many``;
- plain in-process ``exec`` with no isolation (the floor: what the reference
  implementation does), stdout captured, one after the other;
- a fresh ``python -c`` process per program, as many at once as there are CPUs.

Prints runs per second (median over ``--repeats`` passes of the mix; the fresh
process baseline is slow, so it runs ``--fresh-rounds`` passes) and the ratios.
The machine may be shared with other work: read the medians, not one pass.
Also the CPU time the sandbox's processes (zygote, forker, runs) spend per run
of the mix with ``run_many``: less sensitive to other work than the rates.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rstar_pl.sandbox import DEFAULT_PREIMPORT, Sandbox  # noqa: E402

ARITHMETIC = [
    "total_water_goats = 50 * 60\nnum_chickens = 50 * 15\nwater_per_chicken = 60 / 5\n"
    "total = (total_water_goats + num_chickens * water_per_chicken) * 7\nprint(total)",
    "total_sum = 0\nfor num in range(10, 100):\n    if num % 4 == 1:\n        total_sum += num\n"
    "print(total_sum)",
    "def G(m, n, p, q):\n    return m**n + p * q\n"
    "print(next(y for y in range(10) if G(3, y, 6, 15) == 171))",
    "from math import comb, gcd\nprint(comb(10, 3) // gcd(12, 18))",
]
SYMPY = [
    "import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 7*x + 10, x))",
    "from sympy import symbols, expand, factor\nx, y = symbols('x y')\n"
    "print(expand((x + 2*y)**4))\nprint(factor(x**3 - 8))",
    "import sympy as sp\nx, y = sp.symbols('x y')\n"
    "print(sp.solve([2*x + 3*y - 12, x - y - 1], [x, y]))",
    "import sympy as sp\nn = sp.symbols('n', integer=True)\n"
    "print(sp.summation(n**2, (n, 1, 100)), sp.Rational(3, 4) + sp.Rational(5, 6))",
]
NUMPY = [
    "import numpy as np\nA = np.array([[2.0, 1.0], [1.0, 3.0]])\nb = np.array([3.0, 5.0])\n"
    "print(np.linalg.solve(A, b))",
    "import numpy as np\nv = np.arange(1, 101)\nprint(int(v[v % 3 == 0].sum()), float(v.mean()))",
    "import numpy as np\nrng = np.random.default_rng(0)\nprint(round(float(rng.random(1000).mean()), 3))",
    "import numpy as np\nprint(np.roots([1, -6, 11, -6]))",
]
MIX = ARITHMETIC + SYMPY + NUMPY


def rate(seconds: list[float], runs: int) -> float:
    return runs / statistics.median(seconds)


def bench_exec(repeats: int, clear_sympy_cache: bool) -> float:
    for name in DEFAULT_PREIMPORT:  # the same modules warm in this process as in the zygote
        importlib.import_module(name)
    from sympy.core.cache import clear_cache

    def one_pass() -> float:
        start = time.perf_counter()
        for code in MIX:
            if clear_sympy_cache:  # a sandboxed run starts from the zygote's cache
                clear_cache()
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
        return time.perf_counter() - start

    one_pass()  # first calls of sympy/numpy paths, as the zygote's warm-up does
    return rate([one_pass() for _ in range(repeats)], len(MIX))


def bench_latency(box: Sandbox, runs: int = 30) -> float:
    """Median seconds for ``run("print(1)")`` as the caller sees it: the fixed cost of a run."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        box.run("print(1)")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sandbox_cpu_seconds(box: Sandbox) -> float:
    """CPU seconds the sandbox's processes have used: the zygote, its children, all they reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    zygote = box._res.worker.proc.pid  # internal, for measuring only
    with open(f"/proc/{zygote}/task/{zygote}/children") as f:
        pids = [zygote, *map(int, f.read().split())]
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # a run that ended meanwhile (counted once reaped)
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def bench_cpu(box: Sandbox, passes: int) -> float:
    """CPU seconds per run over ``passes`` run_many passes of the mix (all its processes)."""
    box.run_many(MIX)
    before = sandbox_cpu_seconds(box)
    for _ in range(passes):
        box.run_many(MIX)
    return (sandbox_cpu_seconds(box) - before) / (passes * len(MIX))


def bench_sandbox(box: Sandbox, repeats: int) -> tuple[float, float]:
    def sequential() -> float:
        start = time.perf_counter()
        for code in MIX:
            assert box.run(code).ok
        return time.perf_counter() - start

    def parallel() -> float:
        start = time.perf_counter()
        assert all(r.ok for r in box.run_many(MIX))
        return time.perf_counter() - start

    sequential()  # wait for the zygote, warm the spares
    seq = rate([sequential() for _ in range(repeats)], len(MIX))
    par = rate([parallel() for _ in range(repeats)], len(MIX))
    return seq, par


def bench_fresh(rounds: int, workers: int) -> float:
    def one_pass() -> float:
        start = time.perf_counter()
        pending = list(MIX)
        running: list[subprocess.Popen] = []
        while pending or running:
            while pending and len(running) < workers:
                running.append(
                    subprocess.Popen(
                        [sys.executable, "-c", pending.pop()], stdout=subprocess.DEVNULL
                    )
                )
            running.pop(0).wait()
        return time.perf_counter() - start

    return rate([one_pass() for _ in range(rounds)], len(MIX))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="passes of the mix per measurement")
    parser.add_argument("--fresh-rounds", type=int, default=1, help="passes for python -c")
    args = parser.parse_args()
    workers = len(os.sched_getaffinity(0))
    print(
        f"machine: {platform.node()}, {workers} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        f"mix: {len(MIX)} programs ({len(ARITHMETIC)} arithmetic, {len(SYMPY)} sympy, "
        f"{len(NUMPY)} numpy); medians of {args.repeats} passes"
    )

    start = time.perf_counter()
    with Sandbox() as box:
        protections = box.protections  # waits for the zygote's imports and warm-up
        print(
            f"sandbox start: {time.perf_counter() - start:.2f} s; "
            f"protections: {', '.join(protections)}"
        )
        seq, par = bench_sandbox(box, args.repeats)
        latency = bench_latency(box)
        cpu = bench_cpu(box, 2 * args.repeats)
    floor = bench_exec(args.repeats, clear_sympy_cache=False)
    floor_cleared = bench_exec(args.repeats, clear_sympy_cache=True)
    fresh = bench_fresh(args.fresh_rounds, workers)

    print(
        f"fixed cost of one run, run('print(1)') median: {latency * 1e3:.1f} ms; "
        f"sandbox CPU per run of the mix (run_many): {cpu * 1e3:.1f} ms"
    )
    rows = [
        ("in-process exec (no isolation, 1 core)", floor),
        ("  same, sympy cache cleared before each", floor_cleared),
        ("sandbox run(), one at a time", seq),
        (f"sandbox run_many(), {workers} at once", par),
        (f"fresh python -c per program, {workers} at once", fresh),
    ]
    for name, value in rows:
        print(f"  {name:48s} {value:9.1f} runs/s")
    print(
        f"ratios: run_many / fresh process = {par / fresh:.1f}x; "
        f"run / in-process exec = {seq / floor:.2f} ({seq / floor_cleared:.2f} with the cache "
        f"cleared); run_many / in-process exec = {par / floor:.2f} ({par / floor_cleared:.2f})"
    )


if __name__ == "__main__":
    main()
