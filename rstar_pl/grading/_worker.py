"""Symbolic worker: runs math-verify in its own process, one request at a time.

Started by `rstar_pl.grading.pool` as ``python _worker.py`` (by path, so that it imports neither
the caller's ``__main__`` nor the ``rstar_pl`` package). Protocol: one JSON object per line.

    -> {"ready": true, "pid": 123}                                         once, after imports
    <- {"id": 7, "budget": 2.5, "pairs": [["<gold latex>", "<pred latex>"], ...]}
    -> {"id": 7, "results": [true, false, null, ...]}      null: not decided within the budget

A pair is judged by math-verify's ``verify`` with the checks of `_symbolic` around it: two
numbers compare by value to 60 digits relative to their size (instead of math-verify's absolute
cut-off), an equal verdict on expressions with variables must survive sample points, an equation
against values compares solution sets, and a decimal may approximate an exact value (`numeric`).

The worker runs on its own main thread, so it bounds each request with ``setitimer`` (math-verify's
own ``signal.alarm`` timeouts are switched off: they take whole seconds and would replace the
timer). Work stuck inside C code ignores the timer; the parent kills the worker at its deadline,
and an RLIMIT_CPU set before each request ends the worker even if the parent is gone.
"""

from __future__ import annotations

import os
import sys

# `python _worker.py` puts this folder first on sys.path, where its modules would shadow the
# standard library's (and the package's modules must not be imported half-way).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import functools  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402


class _Budget(BaseException):
    """Raised by the interval timer; a BaseException so that no `except Exception` in sympy or
    math-verify swallows it."""


def _on_alarm(signum, frame):  # noqa: ARG001
    raise _Budget()


def _load(name: str):
    # A module beside this file, loaded by path: importing the package would run rstar_pl/__init__.
    path = os.path.join(_HERE, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_rstar_grading{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while building Number
    spec.loader.exec_module(module)
    return module


def _limit_memory() -> None:
    mb = int(os.environ.get("RSTAR_GRADING_WORKER_MEMORY_MB", "4096"))
    if mb > 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (mb << 20, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def _limit_cpu(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds) + 2
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


def main() -> None:
    # Requests on stdin, replies on a private copy of stdout; anything a library prints goes to
    # stderr so that it cannot corrupt the protocol.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory()
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        numeric = _load("numeric")
        symbolic = _load("_symbolic")
    except Exception as e:  # report why, then stop: the parent falls back to text comparison
        out.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        return
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGALRM, _on_alarm)
    config = [LatexExtractionConfig(), ExprExtractionConfig()]

    @functools.lru_cache(maxsize=4096)  # the elements of a list are compared pairwise
    def parsed(latex: str):
        return parse(f"${latex}$", extraction_config=config, parsing_timeout=None)

    def first(expr_list):
        return next((e for e in expr_list if not isinstance(e, str)), None)

    def real_value(expr):
        """The value of a real number as a Fraction with 50 good digits, else None."""
        number = symbolic.as_number(expr)
        if number is None:
            return None
        v = number.evalf(symbolic.DIGITS)
        if v.is_real and v.is_finite and v.is_Number:
            return numeric.Fraction(str(v))
        return None

    def approximated(gold: str, pred: str, g, p) -> bool:
        """A decimal approximation of an exact value (1.414 for \\sqrt{2})."""
        for approx_text, exact_expr in ((pred, g), (gold, p)):
            approx = numeric.parse_number(approx_text)
            if approx is not None and approx.places is not None and exact_expr is not None:
                exact = real_value(exact_expr)
                if exact is not None and numeric.approximates(approx, exact):
                    return True
        return False

    def judge(gold: str, pred: str) -> bool:
        g, p = parsed(gold), parsed(pred)
        ge, pe = first(g), first(p)
        if symbolic.is_statement(ge) or symbolic.is_statement(pe):
            return False  # "log_36(36)=1" and "log_36(26)=1" are not the same answer
        gn, pn = symbolic.as_number(ge), symbolic.as_number(pe)
        if gn is not None and pn is not None:  # two numbers: by value, never math-verify's test
            return bool(symbolic.same_number(gn, pn)) or approximated(gold, pred, ge, pe)
        same = symbolic.same_equation(ge, pe)
        if same is not None:  # two equations: proportional, or with the same solutions
            return same
        if g and p and verify(g, p, timeout_seconds=None):
            return not symbolic.refuted(ge, pe)
        return bool(symbolic.same_solutions(ge, pe)) or approximated(gold, pred, ge, pe)

    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        budget = max(float(request.get("budget", 1.0)), 0.01)
        _limit_cpu(budget)
        end = time.monotonic() + budget
        results: list[bool | None] = []
        try:
            for gold, pred in request["pairs"]:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                signal.setitimer(signal.ITIMER_REAL, remaining)
                try:
                    results.append(judge(gold, pred))
                except Exception:
                    results.append(False)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except _Budget:
            pass
        results += [None] * (len(request["pairs"]) - len(results))
        out.write(json.dumps({"id": request.get("id"), "results": results}) + "\n")


if __name__ == "__main__":
    main()
