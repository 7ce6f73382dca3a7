"""Expansion: one batched policy call, one sandbox call and one scorer call for
the frontier nodes of many trees at once.

Every search strategy (MCTS, step-level beam search, best-of-N) grows its trees
through `expand`. Given (tree, node) requests it

1. sends every request's context (prompt + steps so far) to the policy backend
   in **one** `generate` call, `n` samples each;
2. drops duplicate completions of the same node;
3. parses each completion into a step (`steps.parse_step`); one that is not a
   well-formed step becomes an error node;
4. verifies every new code step in **one** `sandbox.run_many` call, running the
   whole program of its path (the code of the earlier error-free code steps,
   then the new step); a code step that raises is an error node, and the output
   of a `<end_of_code>` step is the program's stdout;
5. grades answer steps against the tree's reference (`grading.is_equivalent`);
6. marks terminals: answer steps, nodes after `errors_threshold` consecutive
   errors, nodes at `max_depth`;
7. optionally scores new nodes with the scorer in **one** `score` call (the
   value becomes the node's prior, `q^0 = PPM(prefix)`).

Why failed steps are left out of later programs: the policy may repair an error
in its next step; keeping failing code would make every later step fail too and
`errors_threshold > 1` would mean nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rstar_pl.backends.base import PolicyBackend, Scorer
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.tree import Tree
from rstar_pl.steps import STOP_STRINGS, StepFormatError, format_output, join_code, parse_step

__all__ = ["Sampling", "SearchEnv", "expand"]


@dataclass(frozen=True)
class Sampling:
    """How the policy samples one step."""

    temperature: float = 1.0
    """Sampling temperature (0.7 in round 1, 1.0 later; 0 is greedy)."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_tokens: int = 1024
    """Token limit of one step."""
    stop: tuple[str, ...] = STOP_STRINGS
    """Stop strings; one stop is one node (round 1 adds <end_of_output>)."""


@dataclass
class SearchEnv:
    """The outside world a search talks to; the search itself imports no model.

    Attributes:
        backend: the policy (`PolicyBackend`). It receives one seed per
            prompt (derived from the tree seed and the node id, as the protocol
            allows), which makes every tree independent of the batch it runs
            in; a backend with the attribute `per_prompt_seeds = False` gets one
            seed per call instead.
        sandbox: anything with `run_many(codes) -> list[ExecResult]`.
        scorer: the PPM (`Scorer`), or None.
        grader: `(pred, gold) -> bool`; defaults to `grading.is_equivalent`.
        output_max_chars: program output kept in the `<output>` block.
        calls: counts of backend/sandbox/scorer calls (for benchmarks and tests).
    """

    backend: PolicyBackend
    sandbox: Any
    scorer: Scorer | None = None
    grader: Callable[[str, str], bool] | None = None
    output_max_chars: int = 1024
    calls: Counter = field(default_factory=Counter)
    _grades: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def grade(self, pred: str, gold: str) -> bool:
        key = (pred, gold)
        if key not in self._grades:
            if self.grader is None:
                from rstar_pl.grading import is_equivalent

                self.grader = is_equivalent
            self._grades[key] = bool(self.grader(pred, gold))
        return self._grades[key]


def _error_line(result: Any) -> str:
    if getattr(result, "timed_out", False):
        return "timed out"
    text = (result.error or "error").strip()
    return text.splitlines()[-1] if text else "error"


def expand(
    requests: Sequence[tuple[Tree, int]],
    env: SearchEnv,
    *,
    n: int,
    sampling: Sampling,
    max_depth: int,
    errors_threshold: int,
    score: Literal["all", "terminal", "none"] = "none",
    dedupe: bool = True,
    call_seed: int = 0,
) -> list[list[int]]:
    """Grow one level: add the children of every (tree, node) request.

    Returns the new child ids of each request, in request order. Each request
    node must not have been expanded before.
    """
    if not requests:
        return []
    contexts = [tree.context(node) for tree, node in requests]
    seeds: int | list[int] = call_seed
    if getattr(env.backend, "per_prompt_seeds", True):
        seeds = [derive_seed(tree.seed, node) for tree, node in requests]
    completions = env.backend.generate(
        contexts,
        n=n,
        stop=sampling.stop,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=seeds,
        affinity=[tree.seed for tree, _ in requests],  # a tree's nodes share its prefix
    )
    env.calls["generate"] += 1
    env.calls["prompts"] += len(contexts)
    if len(completions) != len(requests):
        raise ValueError(
            f"backend returned {len(completions)} completion lists for {len(requests)} prompts"
        )

    # specs[r] = list of dicts describing the children of request r, before they exist
    specs: list[list[dict[str, Any]]] = []
    programs: list[str] = []
    program_of: list[tuple[int, int]] = []
    for r, ((tree, node), comps) in enumerate(zip(requests, completions)):
        prefix_steps = None
        seen: set[str] = set()
        kids: list[dict[str, Any]] = []
        for comp in comps:
            full = comp.full_text
            if dedupe and full in seen:
                continue
            seen.add(full)
            spec: dict[str, Any] = {"text": full, "kind": "step", "error": None, "output": None}
            try:
                step = parse_step(comp.text, comp.stop)
            except StepFormatError as err:
                spec["error"] = f"format: {err}"
                kids.append(spec)
                continue
            spec["kind"] = step.kind
            if step.kind == "answer":
                spec["answer"] = step.answer
            else:
                if prefix_steps is None:
                    prefix_steps = [
                        tree.step(i)
                        for i in tree.path(node)[1:]
                        if tree.kind[i] != "answer" and tree.error[i] is None
                    ]
                programs.append(join_code([*prefix_steps, step]))
                program_of.append((r, len(kids)))
            kids.append(spec)
        specs.append(kids)

    if programs:
        results = env.sandbox.run_many(programs)
        env.calls["run_many"] += 1
        env.calls["programs"] += len(programs)
        for (r, k), result in zip(program_of, results):
            spec = specs[r][k]
            if result.ok and not getattr(result, "timed_out", False):
                if spec["kind"] == "code_end":
                    spec["output"] = (result.stdout or "").strip()[-env.output_max_chars :]
            else:
                spec["error"] = _error_line(result)
                if spec["kind"] == "code_end":
                    spec["output"] = spec["error"]

    for (tree, node), kids, context in zip(requests, specs, contexts):
        depth = tree.depth[node] + 1
        for spec in kids:
            run = tree.error_run[node] + 1 if spec["error"] is not None else 0
            is_answer = spec["kind"] == "answer"
            spec["terminal"] = is_answer or run >= errors_threshold or depth >= max_depth
            if spec["terminal"]:
                answer = spec.get("answer")
                if answer is not None and tree.reference is not None:
                    spec["correct"] = env.grade(answer, tree.reference)
                elif tree.reference is not None:
                    spec["correct"] = False
            if score == "all" or (score == "terminal" and spec["terminal"]):
                block = format_output(spec["output"]) if spec["kind"] == "code_end" else ""
                spec["context"] = context + spec["text"] + block

    to_score = [spec for kids in specs for spec in kids if "context" in spec]
    if to_score:
        if env.scorer is None:
            raise ValueError("this search scores steps with a PPM but no scorer was given")
        values = env.scorer.score([spec["context"] for spec in to_score])
        env.calls["score"] += 1
        env.calls["scored"] += len(to_score)
        for spec, value in zip(to_score, values):
            spec["prior"] = max(-1.0, min(1.0, float(value)))

    new_ids: list[list[int]] = []
    for (tree, node), kids in zip(requests, specs):
        ids = []
        for spec in kids:
            ids.append(
                tree.add_child(
                    node,
                    spec["text"],
                    spec["kind"],
                    output=spec["output"],
                    error=spec["error"],
                    terminal=spec["terminal"],
                    answer=spec.get("answer"),
                    correct=spec.get("correct"),
                    prior=spec.get("prior"),
                )
            )
        new_ids.append(ids)
    return new_ids
