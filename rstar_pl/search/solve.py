"""Greedy step-format solving: one trajectory per problem, code really executed.

`solve_greedy(backend, questions, sandbox=...)` writes one solution per
question the way the step format intends, one step per model call, exactly as
search expands a node: the policy writes a step and stops at `<end_of_step>`,
`<end_of_code>` or `<end_of_answer>`; after `<end_of_code>` the program of all
code steps so far runs in the sandbox and its real output is inserted as the
`<output>...<end_of_output>` block; the policy continues until it writes the
answer step. A policy that writes more code after an output gets it run too, up
to `max_code_runs` times (that program starts afresh after the output block:
`steps.join_code`). What the model sees of a run is `steps.program_output`, the
same text search stores for a `code_end` node.

Stopping at every step (rather than generating up to `<end_of_code>` in one
call) costs one prefill per step but keeps the limits the same as search's
(tokens per step, `max_depth` steps) and works with any backend that honours
the step stop strings, the scripted test backend included. Intermediate steps
are not executed: greedy decoding has no alternative step to pick instead, so
running the program once, when it is complete, gives the same trajectory.

All problems advance in lock-step: each round is one batched backend call over
the problems still running, then one batched sandbox call for those that ended
their code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rstar_pl.backends.base import PolicyBackend
from rstar_pl.steps import (
    END_OF_ANSWER,
    END_OF_CODE,
    END_OF_STEP,
    STOP_STRINGS,
    StepFormatError,
    build_prompt,
    format_output,
    join_code,
    parse_trajectory,
    program_output,
)

__all__ = ["Solution", "solve_greedy"]

FinishReason = Literal["answer", "eos", "length", "max_depth", "max_code_runs", "format_error"]


@dataclass(frozen=True)
class Solution:
    """One solved problem.

    Attributes:
        prompt: the prompt the policy continued.
        response: everything after the prompt: the generated text with stop
            strings, and the inserted output blocks.
        num_tokens: tokens generated over all rounds.
        code_runs: how many times the program was executed.
        finish_reason: "answer" (ended on <end_of_answer>), "eos" (ended on
            end-of-sequence), "length" (a step hit the token limit), "max_depth"
            (still writing steps after `max_depth` of them), "max_code_runs"
            (wanted another run past the limit) or "format_error" (code that
            could not be parsed into steps; nothing run).
    """

    prompt: str
    response: str
    num_tokens: int
    code_runs: int
    finish_reason: FinishReason


def _program(response: str) -> str:
    """The program of a response that ends with <end_of_code>."""
    return join_code(parse_trajectory(response))


def solve_greedy(
    backend: PolicyBackend,
    questions: Sequence[str],
    *,
    sandbox: Any,
    max_tokens: int = 1024,
    max_depth: int = 16,
    max_code_runs: int = 2,
    few_shot: bool = False,
    output_chars: int = 1024,
) -> list[Solution]:
    """Solve each question with greedy decoding and real code execution.

    Args:
        backend: the policy.
        questions: problem statements, in order.
        sandbox: anything with `run_many(codes) -> results` where a result has
            `ok`, `stdout`, `error`, `timed_out` (`rstar_pl.sandbox.Sandbox`).
        max_tokens: token limit of one step (one model call).
        max_depth: steps per problem, output blocks not counted (the paper's
            depth limit is 16).
        max_code_runs: executions allowed per problem.
        few_shot: use round 1's few-shot prompt.
        output_chars: inserted outputs keep at most their last this many characters.

    Returns:
        One `Solution` per question, in order.
    """
    prompts = [build_prompt(q, few_shot=few_shot) for q in questions]
    responses = [""] * len(prompts)
    tokens = [0] * len(prompts)
    runs = [0] * len(prompts)
    depth = [0] * len(prompts)
    finish: list[FinishReason | None] = [None] * len(prompts)
    active = list(range(len(prompts)))
    while active:
        batch = backend.generate(
            [prompts[i] + responses[i] for i in active],
            n=1,
            stop=STOP_STRINGS,
            max_tokens=max_tokens,
            temperature=0.0,
        )
        to_run: list[int] = []
        programs: list[str] = []
        going_on: list[int] = []
        for i, (completion, *_) in zip(active, batch, strict=True):
            responses[i] += completion.full_text
            tokens[i] += completion.num_tokens
            depth[i] += 1
            if completion.stop == END_OF_ANSWER:
                finish[i] = "answer"
            elif completion.stop not in (END_OF_STEP, END_OF_CODE):
                finish[i] = "length" if completion.finish_reason == "length" else "eos"
            elif depth[i] >= max_depth:
                finish[i] = "max_depth"
            elif completion.stop == END_OF_STEP:
                going_on.append(i)
            elif runs[i] >= max_code_runs:
                finish[i] = "max_code_runs"
            else:
                try:
                    programs.append(_program(responses[i]))
                except StepFormatError:
                    finish[i] = "format_error"
                    continue
                to_run.append(i)
        results = sandbox.run_many(programs) if programs else []
        for i, result in zip(to_run, results, strict=True):
            responses[i] += format_output(program_output(result, max_chars=output_chars))
            runs[i] += 1
        active = sorted(going_on + to_run)
    return [
        Solution(prompts[i], responses[i], tokens[i], runs[i], finish[i] or "eos")
        for i in range(len(prompts))
    ]
