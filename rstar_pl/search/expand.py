"""Expansion: one batched policy call, one sandbox call and one scorer call for
the frontier nodes of many trees at once.

Every search strategy (MCTS, step-level beam search, best-of-N) grows its trees
through `expand`, in named phases over typed `Candidate` records:

1. `_sample`: every request's context (prompt + steps so far) goes to the
   policy backend in **one** `generate` call, `n` samples each;
2. `_parse`: each completion becomes a candidate step (`steps.parse_step`);
   duplicates of the same node are dropped (by the parsed step's text, so a
   round-1 completion that ran on past `<end_of_code>` into an output block of
   its own is stored, and compared, without that invented output); one that
   is not a well-formed step is an error candidate;
3. `_run_programs`: every new code step is verified in **one**
   `sandbox.run_many` call, running the program of its path
   (`steps.join_code`); a step whose program fails is an error candidate, and
   a `<end_of_code>` step's output is what `steps.program_output` makes of the
   run;
4. `_mark_terminals`: answer steps and steps at `max_depth` are terminal;
   answers are graded against the tree's reference (`grading.is_equivalent`);
5. `_score`: new valid steps get a prior from the scorer in **one** `score`
   call (`q^0 = PPM(prefix)`), except that, with `known_terminals` and a
   reference answer, a terminal starts from its known outcome instead
   (+1 correct, -1 otherwise);
6. `_attach`: the candidates become children, errors included (see `tree.py`:
   an error child is kept for diagnostics and takes no part in the search).

What happens to a node that got no valid child (retry or "no valid child") is
the lock-step driver's business (`lockstep.py`), the same for every strategy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rstar_pl.backends.base import Completion, PolicyBackend, Scorer
from rstar_pl.errors import UserError
from rstar_pl.search.tree import Tree
from rstar_pl.steps import (
    STOP_STRINGS,
    Step,
    StepFormatError,
    format_output,
    join_code,
    parse_step,
    program_output,
)

__all__ = ["Candidate", "Expansion", "Sampling", "SearchEnv", "expand"]


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


@dataclass(frozen=True)
class Expansion:
    """How a strategy grows a node: what differs between MCTS, beam and best-of-N."""

    n: int
    """Samples per expanded node."""
    sampling: Sampling = field(default_factory=Sampling)
    max_depth: int = 16
    """A step at this depth is terminal."""
    score: Literal["all", "terminal", "none"] = "none"
    """Which new valid steps the scorer values: all, only terminals, or none."""
    known_terminals: bool = False
    """With a reference answer, a terminal's prior is its outcome (+1/-1), not the
    scorer's value (PPM-augmented annotation of training trees)."""
    dedupe: bool = True
    """Drop a sample whose step text equals another child's of the same node."""


@dataclass(slots=True)
class Candidate:
    """One sampled next step of a node, on its way to becoming a child.

    `error` is None for a valid step; otherwise why it is not one (`format: ...`
    for a completion that is not a step, else the program's one-line error).
    """

    text: str
    kind: str = "step"
    step: Step | None = None
    error: str | None = None
    output: str | None = None
    answer: str | None = None
    terminal: bool = False
    correct: bool | None = None
    prior: float | None = None


def expand(
    requests: Sequence[tuple[Tree, int]],
    env: SearchEnv,
    expansion: Expansion,
    *,
    seeds: int | Sequence[int],
) -> list[list[int]]:
    """Grow one level: add the children of every (tree, node) request.

    `seeds` is one seed per request (or one for the call, for a backend without
    per-prompt seeds). Returns the new child ids of each request, in request
    order, error children included.
    """
    if not requests:
        return []
    contexts = [tree.context(node) for tree, node in requests]
    affinity = [tree.seed for tree, _ in requests]  # a tree's nodes share its prefix
    completions = _sample(contexts, env, expansion, seeds, affinity)
    candidates = [
        _parse(tree, node, comps, expansion.dedupe)
        for (tree, node), comps in zip(requests, completions)
    ]
    _run_programs(requests, candidates, env)
    _mark_terminals(requests, candidates, env, expansion.max_depth)
    if expansion.score != "none":
        _score(requests, contexts, candidates, env, expansion)
    return [_attach(tree, node, kids) for (tree, node), kids in zip(requests, candidates)]


def _sample(
    contexts: list[str],
    env: SearchEnv,
    expansion: Expansion,
    seeds: int | Sequence[int],
    affinity: list[int],
) -> list[list[Completion]]:
    sampling = expansion.sampling
    completions = env.backend.generate(
        contexts,
        n=expansion.n,
        stop=sampling.stop,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=seeds,
        affinity=affinity,
    )
    env.calls["generate"] += 1
    env.calls["prompts"] += len(contexts)
    if len(completions) != len(contexts):
        raise ValueError(
            f"backend returned {len(completions)} completion lists for {len(contexts)} prompts"
        )
    return completions


def _parse(tree: Tree, node: int, completions: list[Completion], dedupe: bool) -> list[Candidate]:
    seen = {tree.text[c] for c in tree.children[node]} if dedupe else set()
    raw: set[str] = set()
    kids = []
    for comp in completions:
        if dedupe:  # the same completion twice: skip it before parsing (the common case)
            full = comp.full_text
            if full in raw:
                continue
            raw.add(full)
        try:
            step = parse_step(comp.text, comp.stop)
        except StepFormatError as err:
            candidate = Candidate(comp.full_text, error=f"format: {err}")
        else:
            candidate = Candidate(step.text, step.kind, step, answer=step.answer)
        if dedupe:
            if candidate.text in seen:
                continue
            seen.add(candidate.text)
        kids.append(candidate)
    return kids


def _run_programs(
    requests: Sequence[tuple[Tree, int]], candidates: list[list[Candidate]], env: SearchEnv
) -> None:
    programs: list[str] = []
    owners: list[Candidate] = []
    for (tree, node), kids in zip(requests, candidates):
        prefix: list[Step] | None = None
        for kid in kids:
            if kid.error is not None or kid.kind == "answer":
                continue
            if prefix is None:
                prefix = [tree.step(i) for i in tree.path(node)[1:]]
            programs.append(join_code([*prefix, kid.step]))
            owners.append(kid)
    if not programs:
        return
    results = env.sandbox.run_many(programs)
    env.calls["run_many"] += 1
    env.calls["programs"] += len(programs)
    for kid, result in zip(owners, results, strict=True):
        failed = result.error is not None or getattr(result, "timed_out", False)
        if kid.kind == "code_end":
            kid.output = program_output(result, max_chars=env.output_max_chars)
        if failed:
            kid.error = result.error or "TimeoutError: the program ran too long"


def _mark_terminals(
    requests: Sequence[tuple[Tree, int]],
    candidates: list[list[Candidate]],
    env: SearchEnv,
    max_depth: int,
) -> None:
    for (tree, node), kids in zip(requests, candidates):
        at_limit = tree.depth[node] + 1 >= max_depth
        for kid in kids:
            if kid.error is not None:
                continue
            kid.terminal = kid.kind == "answer" or at_limit
            if kid.terminal and tree.reference is not None:
                kid.correct = kid.answer is not None and env.grade(kid.answer, tree.reference)


def _score(
    requests: Sequence[tuple[Tree, int]],
    contexts: list[str],
    candidates: list[list[Candidate]],
    env: SearchEnv,
    expansion: Expansion,
) -> None:
    texts: list[str] = []
    owners: list[Candidate] = []
    for (tree, _), context, kids in zip(requests, contexts, candidates):
        for kid in kids:
            if kid.error is not None or (expansion.score == "terminal" and not kid.terminal):
                continue
            if kid.terminal and expansion.known_terminals and tree.reference is not None:
                kid.prior = 1.0 if kid.correct else -1.0
                continue
            block = format_output(kid.output) if kid.kind == "code_end" else ""
            texts.append(context + kid.text + block)
            owners.append(kid)
    if not texts:
        return
    if env.scorer is None:
        raise UserError("this search scores steps with a PPM but no scorer was given")
    values = env.scorer.score(texts)
    env.calls["score"] += 1
    env.calls["scored"] += len(texts)
    for kid, value in zip(owners, values, strict=True):
        kid.prior = max(-1.0, min(1.0, float(value)))


def _attach(tree: Tree, node: int, kids: list[Candidate]) -> list[int]:
    return [
        tree.add_child(
            node,
            kid.text,
            kid.kind,
            output=kid.output,
            error=kid.error,
            terminal=kid.terminal,
            answer=kid.answer,
            correct=kid.correct,
            prior=kid.prior,
        )
        for kid in kids
    ]
