"""The Hugging Face transformers implementation of `PolicyBackend`.

`HFBackend(path)` loads a causal LM folder (or wraps a model and tokenizer
already in memory) and serves `generate(prompts, n=..., stop=..., ...)` with
`model.generate`: prompts are left-padded and batched, stop strings are handled
by transformers' `stop_strings` criterion (a row stops as soon as its text ends
with one), and each completion is cut at its first stop string, which is
reported in `Completion.stop`. Decoding drops only padding and end-of-sequence
tokens, never other special tokens: the step tags may be registered as special
tokens. Token counts include the stop string (or the
end-of-sequence token) that ended the row.

Sampling is seeded per call (`seed`), inside a forked RNG state so that the
caller's global torch RNG is left untouched. One RNG serves the whole batch, so
the backend declares `per_prompt_seeds = False` and search sends it one seed
per call; a list of seeds is accepted and folded into one. Temperature 0 is greedy decoding;
the `n` completions of a greedy call are then copies of one.

This is the reference backend: simple, exact, and slow next to vLLM. It is
what runs in tests and on machines without vLLM.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Hashable, Sequence
from typing import Any

from rstar_pl.backends.base import Completion
from rstar_pl.errors import UserError

__all__ = ["HFBackend"]


class HFBackend:
    """Batched generation with a transformers causal LM.

    Attributes:
        per_prompt_seeds: False: one seed drives a whole call (see module doc).

    Args:
        model: a folder (or hub id) loadable by `AutoModelForCausalLM`, or an
            already loaded model (then `tokenizer` is required).
        tokenizer: tokenizer to use; loaded from `model` when it is a path.
        device: "cpu", "cuda", "cuda:1", ...; default: CUDA when available.
        dtype: torch dtype name for loading ("auto", "bfloat16", "float32").
        batch_size: prompts per `model.generate` call (each with its `n` samples).
    """

    per_prompt_seeds = False

    def __init__(
        self,
        model: str | os.PathLike | Any,
        tokenizer: Any | None = None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, str | os.PathLike):
            path = str(model)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
        elif tokenizer is None:
            raise UserError("HFBackend: a tokenizer is required with an in-memory model")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        # Left padding keeps every prompt's last token adjacent to its generation.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.batch_size = batch_size

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
        """`n` completions per prompt, in prompt order (see `PolicyBackend`)."""
        import torch

        if seed is not None and not isinstance(seed, int):
            seed = zlib.crc32(",".join(map(str, seed)).encode())

        if n < 1:
            raise UserError(f"n must be >= 1, got {n}")
        if max_tokens < 1:
            raise UserError(f"max_tokens must be >= 1, got {max_tokens}")
        if temperature < 0:
            raise UserError(f"temperature must be >= 0, got {temperature}")
        stop = tuple(s for s in stop if s)
        greedy = temperature == 0
        samples = 1 if greedy else n
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        results: list[list[Completion]] = []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(prompts), self.batch_size):
                batch = list(prompts[start : start + self.batch_size])
                rows = self._generate_batch(batch, samples, stop, max_tokens, temperature, top_p)
                for i in range(len(batch)):
                    group = rows[i * samples : (i + 1) * samples]
                    results.append(group * n if greedy else group)
        return results

    def _generate_batch(
        self,
        prompts: list[str],
        samples: int,
        stop: tuple[str, ...],
        max_tokens: int,
        temperature: float,
        top_p: float,
    ) -> list[Completion]:
        import torch
        from transformers import GenerationConfig

        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        config = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None,
            top_k=None,
            num_return_sequences=samples,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids) or None,
            stop_strings=list(stop) or None,
        )
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=config, tokenizer=self.tokenizer)
        generated = out[:, inputs["input_ids"].shape[1] :].tolist()
        return [self._completion(ids, stop) for ids in generated]

    def _completion(self, ids: list[int], stop: tuple[str, ...]) -> Completion:
        """Cut one generated row at its end and at its first stop string.

        A row that finished early is followed by padding; with the pad token
        equal to EOS the EOS that ended it is indistinguishable from padding,
        so it is counted back when no stop string explains the early end.
        """
        pad = self.tokenizer.pad_token_id
        length = len(ids)
        while length and ids[length - 1] == pad:
            length -= 1
        ended_early = length < len(ids)
        ended_by_eos = length > 0 and ids[length - 1] in self.eos_ids
        # Only padding and end-of-sequence are not text: a tokenizer may register the
        # step tags as special tokens, and skip_special_tokens would drop them.
        text = self.tokenizer.decode(
            [i for i in ids[:length] if i != pad and i not in self.eos_ids],
            skip_special_tokens=False,
        )
        hits = [(text.find(s), s) for s in stop if s in text]
        if hits:
            cut, which = min(hits)
            return Completion(text=text[:cut], stop=which, num_tokens=length, finish_reason="stop")
        if ended_by_eos or ended_early:
            if ended_early and not ended_by_eos and pad in self.eos_ids:
                length += 1  # the EOS that ended the row, stripped with the padding
            return Completion(text=text, stop=None, num_tokens=length, finish_reason="stop")
        return Completion(text=text, stop=None, num_tokens=length, finish_reason="length")
