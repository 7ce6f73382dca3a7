"""Search bookkeeping cost per node, and backend calls per depth level.

    python benchmarks/bench_search.py [--problems 64] [--rollouts 16] [--n 8] [--repeats 3]
                                      [--unvisited 0]

Runs MCTS with the scripted backend (zero model cost) on copies of the built-in
problems, twice side by side in the same process: all trees in lock-step (one
batch) and, as the baseline, one tree per batch (what a per-tree loop would
do). Time spent inside the backend, the sandbox, the scorer and the grader is
measured by wrappers and subtracted, so "bookkeeping" is the search's own
Python: selection, expansion bookkeeping, parsing steps, building programs and
contexts, backup. Reports medians over `--repeats`.

The sandbox here is an in-process `exec` stand-in by default (its time is
excluded anyway; it keeps the benchmark fast); `--sandbox real` uses
`rstar_pl.sandbox.Sandbox`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
from dataclasses import dataclass, replace

from rstar_pl.backends.scripted import ScriptedBackend, ScriptedScorer, scripts_from_problems
from rstar_pl.data.problems import ProblemsConfig, load_problems
from rstar_pl.search import MCTSConfig, SearchEnv, run_mcts


@dataclass
class _Result:
    ok: bool
    stdout: str
    error: str | None
    timed_out: bool = False
    seconds: float = 0.0


class ExecSandbox:
    """Benchmark-only stand-in: runs code in-process (no isolation at all)."""

    def run_many(self, codes):
        out = []
        for code in codes:
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    exec(code, {})
                out.append(_Result(True, buf.getvalue(), None))
            except Exception as err:  # the model's code failing is data, not a crash
                out.append(_Result(False, buf.getvalue(), f"{type(err).__name__}: {err}"))
        return out


class Timed:
    """Wraps an object and adds the time spent in one method to a shared clock."""

    def __init__(self, inner, method: str, clock: dict):
        self._inner, self._method, self._clock = inner, method, clock
        self.per_prompt_seeds = getattr(inner, "per_prompt_seeds", True)
        self.sizes: list[int] = []

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._clock["external"] += time.perf_counter() - start
                if args:
                    self.sizes.append(len(args[0]))

        return timed


def run_once(problems, scripts, sandbox, config, batch_size, annotation):
    clock = {"external": 0.0}
    backend = Timed(ScriptedBackend(scripts, p_wrong=0.3, p_error=0.1, seed=0), "generate", clock)
    scorer = Timed(ScriptedScorer(scripts, seed=0), "score", clock) if annotation == "ppm" else None
    from rstar_pl.grading import is_equivalent

    def grader(pred, gold):
        start = time.perf_counter()
        try:
            return is_equivalent(pred, gold)
        finally:
            clock["external"] += time.perf_counter() - start

    env = SearchEnv(backend, Timed(sandbox, "run_many", clock), scorer, grader=grader)
    nodes = 0
    levels = 0
    start = time.perf_counter()
    for i in range(0, len(problems), batch_size):
        calls_before = env.calls["generate"]
        trees = run_mcts(problems[i : i + batch_size], env, config, seed=0)
        levels = max(levels, env.calls["generate"] - calls_before)
        nodes += sum(len(t) for t in trees)
    total = time.perf_counter() - start
    return {
        "nodes": nodes,
        "total_s": total,
        "bookkeeping_s": total - clock["external"],
        "calls": env.calls["generate"],
        "levels_max": levels,
        "prompts_per_call": statistics.mean(backend.sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--annotation", choices=("terminal", "ppm"), default="terminal")
    parser.add_argument("--sandbox", choices=("exec", "real"), default="exec")
    parser.add_argument(
        "--unvisited",
        default=MCTSConfig.unvisited,
        help="first-play value of unvisited children: inf, parent_q or a number",
    )
    args = parser.parse_args()

    base = load_problems(ProblemsConfig(source="builtin:scripted_problems")).problems
    problems = [
        replace(base[i % len(base)], id=f"{base[i % len(base)].id}-copy{i}")
        for i in range(args.problems)
    ]
    scripts = scripts_from_problems(base)
    config = MCTSConfig(
        rollouts=args.rollouts, n=args.n, annotation=args.annotation, unvisited=args.unvisited
    )
    if args.sandbox == "real":
        from rstar_pl.sandbox import Sandbox

        sandbox_cm = Sandbox(timeout=10)
    else:
        sandbox_cm = contextlib.nullcontext(ExecSandbox())
    from rstar_pl.grading import is_equivalent

    is_equivalent("16", "16.0")  # warm the grader up outside the timings
    rows = {}
    with sandbox_cm as sandbox:
        for label, batch in (
            ("lock-step (one batch)", len(problems)),
            ("baseline: one tree per batch", 1),
        ):
            runs = [
                run_once(problems, scripts, sandbox, config, batch, args.annotation)
                for _ in range(args.repeats)
            ]
            rows[label] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"bench_search: {args.problems} trees, {args.rollouts} rollouts, n={args.n}, "
        f"annotation={args.annotation}, unvisited={config.unvisited}, sandbox={args.sandbox}, "
        f"median of {args.repeats}"
    )
    header = f"{'':32} {'nodes':>7} {'backend calls':>13} {'prompts/call':>12} {'us/node (bookkeeping)':>22} {'total s':>8}"
    print(header)
    for label, r in rows.items():
        print(
            f"{label:32} {r['nodes']:7.0f} {r['calls']:13.0f} {r['prompts_per_call']:12.1f} "
            f"{1e6 * r['bookkeeping_s'] / r['nodes']:22.1f} {r['total_s']:8.2f}"
        )
    lock, solo = rows["lock-step (one batch)"], rows["baseline: one tree per batch"]
    print(
        f"lock-step: {lock['calls']:.0f} backend calls for {lock['levels_max']:.0f} levels "
        f"(calls per level per batch = {lock['calls'] / lock['levels_max']:.2f}); "
        f"baseline makes {solo['calls'] / lock['calls']:.1f}x as many calls; "
        f"bookkeeping per node ratio lock-step/baseline = "
        f"{(lock['bookkeeping_s'] / lock['nodes']) / (solo['bookkeeping_s'] / solo['nodes']):.2f}"
    )


if __name__ == "__main__":
    main()
