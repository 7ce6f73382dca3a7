"""A model-free policy backend and scorer that follow per-problem scripts.

They make search testable against known answers without any model: the
backend writes real step-format text (Python code steps that the sandbox runs,
an `<end_of_code>` step that prints, and an `<answer>` step that copies the
printed output into `\\boxed{}`), so the whole pipeline — parsing, sandbox,
grading — is exercised.

A *script* is the correct solution of one problem: a list of code steps, each
one or more lines whose last line is `name = ...` or (the final step)
`print(...)`. At step k of a trajectory the backend writes, per sample:

- with probability `p_error`: an *error step*, code that raises NameError
  (it uses a name containing `undefined_`); the trajectory stays at step k;
- with probability `p_wrong`: a *wrong step*. When the script lists flawed
  versions of its steps (a problem set may give plausible mistakes, e.g.
  `rstar_pl.data.wordproblems`), one of step k's (the correct step if step k
  lists none); otherwise the correct code with its value shifted by a small
  nonzero integer. The code runs and the final answer comes out wrong;
- with probability `p_variant`: the correct step written another way (the
  same code under an extra comment line, `VARIANT_MARK`), so that a problem
  has several correct trajectories that share prefixes, as a real policy's do;
- otherwise the correct step (always the same text, so duplicates collapse).

After the `<end_of_code>` step and its `<output>` block, the backend writes the
answer step `<answer>The answer is \\boxed{OUTPUT}.<end_of_answer>`.

Every choice is a fixed function of (backend seed, the prompt's seed, prompt,
sample index): reproducible and independent of which other prompts share the
batch. `temperature=0` always gives the correct step. Like every backend, it
accepts one seed per prompt.

`ScriptedScorer` plays the PPM: +`margin` for a trajectory whose steps so far are
all correct (either way of writing them), -`margin` otherwise, plus seeded noise
in [-noise, noise].
"""

from __future__ import annotations

import random
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from rstar_pl.backends.base import Completion
from rstar_pl.errors import UserError
from rstar_pl.search.seeding import derive_seed
from rstar_pl.steps import (
    ASSISTANT,
    ASSISTANT_OPENING,
    CODE,
    END_OF_ANSWER,
    END_OF_CODE,
    END_OF_STEP,
    USER,
    Step,
    parse_trajectory,
)

__all__ = [
    "ERROR_MARK",
    "VARIANT_MARK",
    "Script",
    "ScriptError",
    "ScriptedBackend",
    "ScriptedScorer",
    "correct_step_text",
    "scripts_from_problems",
]

ERROR_MARK = "undefined_"
VARIANT_MARK = "# (the same step, written another way)"
_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)")
_PRINT = re.compile(r"^\s*print\((.*)\)\s*$")


class ScriptError(UserError):
    """A script or a prompt the scripted backend cannot follow."""


@dataclass(frozen=True)
class Script:
    """The correct solution of one problem, step by step (see module doc), and
    optionally, per step, flawed versions of it (`flaws[k]`, possibly empty)."""

    question: str
    steps: tuple[str, ...]
    flaws: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.steps:
            raise ScriptError(f"script for {self.question[:50]!r} has no steps")
        if self.flaws and len(self.flaws) != len(self.steps):
            raise ScriptError(
                f"script for {self.question[:50]!r}: {len(self.flaws)} lists of flawed steps "
                f"for {len(self.steps)} steps; give one list per step (or none at all)"
            )
        for k, code in enumerate(self.steps):
            last = code.rstrip().splitlines()[-1] if code.strip() else ""
            final = k == len(self.steps) - 1
            if final and not _PRINT.match(last):
                raise ScriptError(
                    f"script for {self.question[:50]!r}: the last step must end with print(...), "
                    f"got {last!r}"
                )
            if not final and not _ASSIGN.match(last):
                raise ScriptError(
                    f"script for {self.question[:50]!r}: step {k + 1} must end with an "
                    f"assignment 'name = ...', got {last!r}"
                )


def _question_of(prompt: str) -> tuple[str, str]:
    """(question, generated part) of a prompt; the last user turn is the question."""
    start = prompt.rfind(USER)
    mid = prompt.find(ASSISTANT, start)
    if start < 0 or mid < 0:
        raise ScriptError(f"prompt {prompt[:60]!r} has no {USER} ... {ASSISTANT} turn")
    question = prompt[start + len(USER) : mid].strip()
    rest = prompt[mid + len(ASSISTANT) :]
    opening = rest.find(ASSISTANT_OPENING)
    rest = rest[opening + len(ASSISTANT_OPENING) :] if opening >= 0 else rest.lstrip()
    return question, rest


class _Scripts:
    def __init__(self, scripts: Iterable[Script]) -> None:
        self.by_question: dict[str, Script] = {}
        for script in scripts:
            self.by_question[script.question.strip()] = script

    def locate(self, prompt: str) -> tuple[Script, list[Step]]:
        question, rest = _question_of(prompt)
        script = self.by_question.get(question)
        if script is None:
            raise ScriptError(f"no script for question {question[:60]!r}")
        return script, parse_trajectory(rest) if rest else []


def _is_error_step(step: Step) -> bool:
    return step.kind != "answer" and ERROR_MARK in step.text


def correct_step_text(script: Script, k: int, variant: bool = False) -> str:
    """The exact text of the correct k-th (0-based) step, stop string included;
    `variant`: its other way of writing (module docstring)."""
    lead = CODE + "\n" if k == 0 else "\n"
    stop = END_OF_CODE if k == len(script.steps) - 1 else END_OF_STEP
    code = script.steps[k].strip()
    if variant:
        code = f"{VARIANT_MARK}\n{code}"
    return f"{lead}{code}\n{stop}"


def _is_correct(script: Script, k: int, text: str) -> bool:
    return k < len(script.steps) and text in (
        correct_step_text(script, k),
        correct_step_text(script, k, variant=True),
    )


def _wrong_code(code: str, delta: int) -> str:
    lines = code.strip().splitlines()
    last = lines[-1]
    printed = _PRINT.match(last)
    if printed:
        lines[-1] = f"print(({printed.group(1)}) + {delta})"
    else:
        name = _ASSIGN.match(last).group(1)
        lines.append(f"{name} = {name} + {delta}")
    return "\n".join(lines)


class ScriptedBackend:
    """Policy backend following scripts (see the module docstring)."""

    per_prompt_seeds = True

    def __init__(
        self,
        scripts: Iterable[Script],
        *,
        p_wrong: float = 0.2,
        p_error: float = 0.1,
        p_variant: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not (
            0 <= p_wrong and 0 <= p_error and 0 <= p_variant and p_wrong + p_error + p_variant <= 1
        ):
            raise ScriptError(
                "p_wrong, p_error and p_variant must be >= 0 with sum <= 1, got "
                f"{p_wrong}, {p_error}, {p_variant}"
            )
        self.scripts = _Scripts(scripts)
        self.p_wrong, self.p_error, self.p_variant, self.seed = p_wrong, p_error, p_variant, seed
        self.calls = 0

    def step_position(self, prompt: str) -> tuple[Script, int, list[Step]]:
        """(script, index of the next script step, steps so far) of a prompt."""
        script, steps = self.scripts.locate(prompt)
        return script, sum(1 for s in steps if s.kind != "answer" and not _is_error_step(s)), steps

    def _sample(self, prompt: str, rng: random.Random, greedy: bool) -> Completion:
        script, k, steps = self.step_position(prompt)
        if steps and steps[-1].kind == "code_end" and not _is_error_step(steps[-1]):
            out = (steps[-1].output or "").strip()
            text = f"<answer>The answer is \\boxed{{{out}}}."
            return Completion(text, END_OF_ANSWER, len(text) // 4 + 1)
        if k >= len(script.steps):  # past the script (only after wrong turns): stop
            text = "<answer>I could not finish.\\boxed{}"
            return Completion(text, END_OF_ANSWER, len(text) // 4 + 1)
        full = correct_step_text(script, k)
        stop = END_OF_CODE if full.endswith(END_OF_CODE) else END_OF_STEP
        body = full[: -len(stop)]
        u = 1.0 if greedy else rng.random()
        if u < self.p_error:
            lines = script.steps[k].strip().splitlines()
            name = _ASSIGN.match(lines[-1])
            target = name.group(1) if name else "value"
            lines[-1] = f"{target} = {ERROR_MARK}{rng.randrange(10**6)} + 1"
            body = body.replace(script.steps[k].strip(), "\n".join(lines))
        elif u < self.p_error + self.p_wrong:
            if script.flaws:  # the problem says which mistakes step k allows (maybe none)
                flawed = script.flaws[k]
                wrong = rng.choice(flawed).strip() if flawed else script.steps[k].strip()
            else:
                delta = rng.choice((-3, -2, -1, 1, 2, 3)) * rng.randint(1, 9)
                wrong = _wrong_code(script.steps[k], delta)
            body = body.replace(script.steps[k].strip(), wrong)
        elif u < self.p_error + self.p_wrong + self.p_variant:
            body = correct_step_text(script, k, variant=True)[: -len(stop)]
        return Completion(body, stop, len(body) // 4 + 1)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        stop: Sequence[str] = (),
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        affinity: Sequence[Hashable] | None = None,
    ) -> list[list[Completion]]:
        self.calls += 1
        if isinstance(seed, Sequence):
            if len(seed) != len(prompts):
                raise ScriptError(f"got {len(seed)} seeds for {len(prompts)} prompts")
            seeds = list(seed)
        else:
            seeds = [seed] * len(prompts)
        out = []
        for prompt, prompt_seed in zip(prompts, seeds):
            samples = []
            for j in range(n):
                rng = random.Random(derive_seed(self.seed, prompt_seed, prompt, j))
                samples.append(self._sample(prompt, rng, temperature == 0))
            out.append(samples)
        return out


class ScriptedScorer:
    """A stand-in PPM: rewards trajectories whose steps all follow the script."""

    def __init__(
        self, scripts: Iterable[Script], *, margin: float = 0.6, noise: float = 0.3, seed: int = 0
    ) -> None:
        self.scripts = _Scripts(scripts)
        self.margin, self.noise, self.seed = margin, noise, seed
        self.calls = 0

    def score(self, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        values = []
        for text in texts:
            script, steps = self.scripts.locate(text)
            good = True
            for k, step in enumerate(s for s in steps if s.kind != "answer"):
                if not _is_correct(script, k, step.text):
                    good = False
            rng = random.Random(derive_seed(self.seed, "score", text))
            value = (self.margin if good else -self.margin) + rng.uniform(-self.noise, self.noise)
            values.append(max(-1.0, min(1.0, value)))
        return values


def scripts_from_problems(problems: Iterable) -> list[Script]:
    """Scripts from problems whose records carry a `script` field (a list of
    code steps), like the built-in set `rstar_pl/data/scripted_problems.json`,
    and optionally `flaws` (per step, a list of flawed versions)."""
    scripts = []
    for problem in problems:
        steps = problem.meta.get("script")
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise ScriptError(
                f"problem {problem.id!r} has no 'script' list of code steps; the scripted "
                "backend needs one per problem"
            )
        flaws = problem.meta.get("flaws") or []
        if not isinstance(flaws, list) or not all(
            isinstance(f, list) and all(isinstance(s, str) for s in f) for f in flaws
        ):
            raise ScriptError(
                f"problem {problem.id!r}: 'flaws' must be a list (one per step) of lists of "
                "code steps"
            )
        scripts.append(Script(problem.question, tuple(steps), tuple(tuple(f) for f in flaws)))
    return scripts
