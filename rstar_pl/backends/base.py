"""The two small protocols that separate search and evaluation from models.

Search, the harness and data generation never import a model library. They talk
to a *policy backend* (prompts in, sampled completions out) and a *scorer*
(partial trajectories in, values in [-1, 1] out). Implementations live one per
file beside this one: `scripted.py` (tests, no model), `hf.py` (transformers),
`vllm.py` (vLLM: the policy and the PPM on its pooling runner), `ppm.py` (the
PPM on transformers) and `ray.py` (replicas of any of them as Ray actors).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Completion", "PolicyBackend", "Scorer", "per_prompt"]


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a prompt.

    Attributes:
        text: the generated text, *without* the stop string that ended it.
        stop: the stop string that ended generation, or None when it ended on
            the end-of-sequence token or on the length limit.
        num_tokens: how many tokens were generated (stop string included).
        finish_reason: "stop" (a stop string or EOS) or "length".
    """

    text: str
    stop: str | None = None
    num_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def full_text(self) -> str:
        """The text as the model wrote it, stop string included."""
        return self.text + (self.stop or "")


@runtime_checkable
class PolicyBackend(Protocol):
    """Turns a batch of prompts into `n` sampled completions each.

    `generate(prompts, n=4, ...)` returns one list per prompt, in prompt order,
    each with `n` completions. `seed` makes sampling reproducible: one int for
    the whole call, or one int per prompt, so that a prompt's samples do not
    depend on which other prompts share the batch. Temperature 0 means greedy
    (then the `n` completions are equal).

    `affinity`, when given, is one key per prompt: prompts with the same key
    grow the same tree and share its prefix (search passes the tree's seed). A
    backend that spreads a call over several engines keeps the prompts of one
    key on one engine, where that prefix is cached; one with a single engine
    ignores it. What a backend returns must not depend on it.
    """

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
    ) -> list[list[Completion]]: ...


@runtime_checkable
class Scorer(Protocol):
    """Turns a batch of partial trajectories (prompt + steps so far) into values
    in [-1, 1], one per text, in order."""

    def score(self, texts: Sequence[str]) -> list[float]: ...


def per_prompt(value: Any, count: int, what: str) -> list:
    """`value` for each of `count` prompts: a single int or None is shared by all, a sequence
    must hold one value per prompt (for `generate`'s `seed` and `affinity`)."""
    if value is None or isinstance(value, int):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(
            f"{what}: got {len(values)} values for {count} prompts; give one per prompt"
        )
    return values
