"""The code-augmented chain-of-thought step format of rStar-Math.

A solution is written one *step* at a time after the prompt::

    <|user|>:
    {question}
    <|assistant|>: Let's think step by step and solve the problem with code.<code>
    # Step 1: ...reasoning as comments...
    total = 2 * 20 * 12
    <end_of_step>
    # Now print the final answer
    print(total / 30)
    <end_of_code>
    <output>16.0<end_of_output>
    <answer>The answer is \\boxed{16}.<end_of_answer>

Generation stops on `<end_of_step>`, `<end_of_code>` or `<end_of_answer>` (round 1
also on `<end_of_output>`); one stop is one tree node. After `<end_of_code>` the
system runs the whole program and inserts the `<output>` block itself, then the
model writes the answer step.

What "the whole program" is (`join_code`): the code of the code steps written
since the last `<end_of_code>` before it, each on its own lines. A program that
follows an output block starts afresh, as in the reference implementation,
which restarts at the last output block: the model has seen the output and
writes new code (often a correction) that must stand on its own.

This module turns one sampled completion plus its stop string into a typed
`Step`, joins the code of a path into one program, formats what the model sees
of a program's run (`program_output`, the one formatter that search, greedy
solving and the harness share), extracts the final `\\boxed{}` answer and
renders whole trajectories back to text (and parses them again:
`parse_trajectory(render_trajectory(...))` is the identity on well-formed
input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from rstar_pl.errors import UserError
from rstar_pl.grading.extract import extract_boxed, extract_boxed_answers

__all__ = [
    "ANSWER",
    "ASSISTANT",
    "CODE",
    "END_OF_ANSWER",
    "END_OF_CODE",
    "END_OF_OUTPUT",
    "END_OF_STEP",
    "OUTPUT",
    "ROUND1_STOP_STRINGS",
    "STEP_TOKENS",
    "STOP_STRINGS",
    "USER",
    "Step",
    "StepFormatError",
    "StepKind",
    "build_prompt",
    "extract_boxed",
    "format_output",
    "join_code",
    "parse_step",
    "parse_trajectory",
    "program_output",
    "render_trajectory",
]

USER = "<|user|>:"
ASSISTANT = "<|assistant|>:"
CODE = "<code>"
END_OF_STEP = "<end_of_step>"
END_OF_CODE = "<end_of_code>"
OUTPUT = "<output>"
END_OF_OUTPUT = "<end_of_output>"
ANSWER = "<answer>"
END_OF_ANSWER = "<end_of_answer>"

#: Tokens a policy's tokenizer must know as whole tokens. They are added as
#: ordinary (non-special) added tokens so that decoding keeps them and stop
#: strings can match them.
STEP_TOKENS: tuple[str, ...] = (
    USER,
    ASSISTANT,
    CODE,
    END_OF_STEP,
    END_OF_CODE,
    OUTPUT,
    END_OF_OUTPUT,
    ANSWER,
    END_OF_ANSWER,
)

STOP_STRINGS: tuple[str, ...] = (END_OF_STEP, END_OF_CODE, END_OF_ANSWER)
ROUND1_STOP_STRINGS: tuple[str, ...] = (*STOP_STRINGS, END_OF_OUTPUT)

ASSISTANT_OPENING = "Let's think step by step and solve the problem with code."

PROMPT_TEMPLATE = "<|user|>:\n{question}\n<|assistant|>: " + ASSISTANT_OPENING

FEW_SHOT_INSTRUCTIONS = """\
You are a powerful agent with broad math knowledge and great Python programming skills. \
Solve the math problem step by step with code. Each step is reasoning written as Python \
comments followed by the Python code for that step, and ends with <end_of_step>. The code of \
all steps so far must run. When the code is complete, print the final result and end with \
<end_of_code>; the output of the program will appear between <output> and <end_of_output>. \
Then write the final answer inside \\boxed{} between <answer> and <end_of_answer>.
"""

FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Tom lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, "
        "how many times must he lift them to lift the same total weight?",
        "<code>\n# Step 1: total weight lifted with the 20-pound weights\n"
        "total = 2 * 20 * 12\n<end_of_step>\n"
        "# Step 2: weight per repetition with the 15-pound weights\n"
        "per_rep = 2 * 15\n<end_of_step>\n"
        "# Now print the final answer\nprint(total // per_rep)\n<end_of_code>\n"
        "<output>16<end_of_output>\n"
        "<answer>He must lift them \\boxed{16} times.<end_of_answer>",
    ),
    (
        "Solve for $x$: $3x + 7 = 22$.",
        "<code>\nimport sympy as sp\n\n# Step 1: define the unknown and the equation\n"
        "x = sp.symbols('x')\nequation = sp.Eq(3 * x + 7, 22)\n<end_of_step>\n"
        "# Step 2: solve the equation\nsolution = sp.solve(equation, x)\n<end_of_step>\n"
        "# Now print the final answer\nprint(solution[0])\n<end_of_code>\n"
        "<output>5<end_of_output>\n"
        "<answer>The solution is $x = \\boxed{5}$.<end_of_answer>",
    ),
)

StepKind = Literal["step", "code_end", "answer"]

_KIND_OF_STOP: dict[str, StepKind] = {
    END_OF_STEP: "step",
    END_OF_CODE: "code_end",
    END_OF_ANSWER: "answer",
}


class StepFormatError(UserError):
    """A completion that is not a well-formed step."""


@dataclass(frozen=True)
class Step:
    """One node's worth of generated text.

    Attributes:
        text: the text as generated, stop string included (what is appended
            to the trajectory).
        kind: "step" (code, ends with <end_of_step>), "code_end" (last code,
            ends with <end_of_code>) or "answer" (ends with <end_of_answer>).
        output: for a code_end step, the program output the system inserted
            after it (None until the program has run).
    """

    text: str
    kind: StepKind
    output: str | None = None

    @property
    def code(self) -> str:
        """The Python code of a step (comments included); "" for an answer."""
        if self.kind == "answer":
            return ""
        return self.text.replace(CODE, "").replace(END_OF_STEP, "").replace(END_OF_CODE, "")

    @property
    def answer(self) -> str | None:
        """The answer of an answer step: the content of its last \\boxed{}, or of its last run
        of boxes joined (``\\boxed{3}, \\boxed{5}`` is ``3, 5``), as the harness reads it
        (`grading.extract_boxed_answers`); None for another kind of step."""
        return extract_boxed_answers(self.text) if self.kind == "answer" else None

    def with_output(self, output: str) -> Step:
        return replace(self, output=output)


def build_prompt(question: str, *, few_shot: bool = False) -> str:
    """The prompt a policy continues with its first step.

    `few_shot=True` is round 1's prompt (instructions and two worked examples,
    for a model that has not learned the format); later rounds use the bare
    prompt.
    """
    if not isinstance(question, str) or not question.strip():
        raise StepFormatError(f"question must be a non-empty string, got {question!r:.60}")
    prompt = PROMPT_TEMPLATE.format(question=question.strip())
    if not few_shot:
        return prompt
    shots = "".join(
        PROMPT_TEMPLATE.format(question=q) + response + "\n\n" for q, response in FEW_SHOT_EXAMPLES
    )
    return FEW_SHOT_INSTRUCTIONS + "\n" + shots + prompt


def _short(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def parse_step(text: str, stop: str | None) -> Step:
    """Type one sampled completion.

    Args:
        text: the completion *without* its stop string (as backends return it).
        stop: the stop string that ended it, or None when generation ended on
            end-of-sequence or length. A round-1 `<end_of_output>` stop is
            accepted: the model's own `<output>` block is dropped, since the
            system inserts the real one.

    Raises:
        StepFormatError: unknown stop string, a marker inside the text, or an
            unterminated completion that holds no answer.
    """
    if stop == END_OF_OUTPUT:
        head, sep, _ = text.partition(END_OF_CODE)
        if not sep:
            raise StepFormatError(
                f"completion {_short(text)} stopped at {END_OF_OUTPUT} without {END_OF_CODE} "
                "before it"
            )
        text, stop = head, END_OF_CODE
    if stop is None:
        # Ended on EOS/length: acceptable only as an answer (some policies end
        # with EOS right after the answer).
        if ANSWER in text and extract_boxed(text) is not None:
            return Step(text=text, kind="answer")
        raise StepFormatError(
            f"completion {_short(text)} ended without a stop string and holds no "
            f"{ANSWER} with a \\boxed{{}} answer"
        )
    kind = _KIND_OF_STOP.get(stop)
    if kind is None:
        allowed = ", ".join((*_KIND_OF_STOP, END_OF_OUTPUT))
        raise StepFormatError(f"unknown stop string {stop!r}; allowed: {allowed}")
    for marker in (END_OF_STEP, END_OF_CODE, END_OF_ANSWER, END_OF_OUTPUT):
        if marker in text:
            raise StepFormatError(
                f"completion {_short(text)} contains {marker} before its stop {stop!r}; "
                "one completion must be exactly one step"
            )
    if kind != "answer" and ANSWER in text:
        raise StepFormatError(f"code step {_short(text)} contains {ANSWER}")
    return Step(text=text + stop, kind=kind)


def join_code(steps: Sequence[Step]) -> str:
    """The program that runs at the end of `steps` (a path's steps in order).

    It is the code of the code steps after the last `code_end` step that comes
    before the final code step (see the module docstring: a program after an
    output block starts afresh), answer steps left out. Each step's code ends a
    line, so `x = 1` and `y = x + 1` written without newlines still join into
    two statements.
    """
    codes = [step for step in steps if step.kind != "answer"]
    start = 0
    for k in range(len(codes) - 1):
        if codes[k].kind == "code_end":
            start = k + 1
    parts = []
    for step in codes[start:]:
        code = step.code
        parts.append(code if code.endswith("\n") else code + "\n")
    return "".join(parts)


class RunResult(Protocol):
    """What `program_output` reads of a sandbox run (`rstar_pl.sandbox.ExecResult`)."""

    stdout: str
    error: str | None
    timed_out: bool


def program_output(result: RunResult, *, max_chars: int = 1024) -> str:
    """What the model sees of one program run, the text of its `<output>` block.

    The program's stdout; when it did not end normally, followed by the one-line
    reason (`Type: message` of the exception, or the sandbox's timeout or limit
    message). Search (a `code_end` node's output), greedy solving and the
    harness all show a run this way, so the policy meets one format in training
    and at test time. Longer text keeps its last `max_chars` characters, after
    "..." (the printed answer and the error are at the end).
    """
    text = result.stdout or ""
    reason = result.error
    if reason is None and getattr(result, "timed_out", False):
        reason = "TimeoutError: the program ran too long"
    if reason is not None:
        text = text.rstrip("\n") + "\n" + reason.strip()
    text = text.strip()
    if len(text) > max_chars:
        text = "..." + text[-max_chars:]
    return text


def format_output(output: str) -> str:
    """The block the system inserts after a code_end step, around the text that
    `program_output` made of the run."""
    return f"\n{OUTPUT}{output.strip()}{END_OF_OUTPUT}\n"


def render_trajectory(question: str | None, steps: Sequence[Step]) -> str:
    """The whole text of a trajectory: the prompt (unless `question` is None),
    every step as generated, and the output block after a code_end step that
    has one."""
    parts = [build_prompt(question)] if question is not None else []
    for step in steps:
        parts.append(step.text)
        if step.kind == "code_end" and step.output is not None:
            parts.append(format_output(step.output))
    return "".join(parts)


def parse_trajectory(response: str) -> list[Step]:
    """Split a response (the text after the prompt) back into steps.

    Inverse of `render_trajectory(None, steps)` for steps whose outputs were
    formatted by `format_output`. A trailing fragment without a stop string is
    an error unless it is an unterminated answer.
    """
    steps: list[Step] = []
    rest = response
    while rest:
        if steps and steps[-1].kind == "code_end" and rest.startswith("\n" + OUTPUT):
            body_end = rest.find(END_OF_OUTPUT)
            if body_end < 0:
                raise StepFormatError(f"{OUTPUT} block without {END_OF_OUTPUT} in {_short(rest)}")
            body = rest[len("\n" + OUTPUT) : body_end]
            steps[-1] = steps[-1].with_output(body)
            rest = rest[body_end + len(END_OF_OUTPUT) :]
            rest = rest[1:] if rest.startswith("\n") else rest
            continue
        cut, stop = _first_stop(rest)
        if stop is None:
            steps.append(parse_step(rest, None))
            break
        steps.append(parse_step(rest[:cut], stop))
        rest = rest[cut + len(stop) :]
    return steps


def _first_stop(text: str) -> tuple[int, str | None]:
    found = [(text.find(s), s) for s in STOP_STRINGS if s in text]
    return min(found) if found else (-1, None)
