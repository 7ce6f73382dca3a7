"""vLLM's CPU build against the transformers backend on the same tiny model.

    python benchmarks/bench_vllm.py [--prompts 64] [--samples 4] [--max-tokens 32] [--repeats 3]

Builds the tiny random model in a temporary folder, then, side by side in one
process, samples `--samples` completions of `--max-tokens` tokens for each of
`--prompts` step-format prompts through the project's two backends:
`HFBackend` (the baseline, batches of 16) and `VLLMBackend`. No stop strings,
so both generate the same number of tokens unless EOS comes first. Prints
generated tokens per second (median over `--repeats` passes, the engine's
start-up excluded and reported on its own) and the ratio. vLLM starts worker
processes, hence the `__main__` guard.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _rate(backend, prompts, args) -> tuple[float, float]:
    """(median tokens/s, median seconds) over the repeats."""
    rates, times = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        out = backend.generate(prompts, n=args.samples, max_tokens=args.max_tokens,
                               temperature=1.0, seed=repeat)
        seconds = time.perf_counter() - start
        tokens = sum(c.num_tokens for row in out for c in row)
        rates.append(tokens / seconds)
        times.append(seconds)
    return statistics.median(rates), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from rstar_pl.backends.hf import HFBackend
    from rstar_pl.backends.vllm import VLLMBackend
    from rstar_pl.steps import build_prompt
    from rstar_pl.tiny import build_tiny_model

    prompts = [build_prompt(f"What is {a} times {a + 7}?") for a in range(args.prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny")
        hf_rate, hf_s = _rate(HFBackend(model, device="cpu", batch_size=16), prompts, args)
        vllm = VLLMBackend(str(model), gpu_memory_utilization=0.3, max_model_len=1024)
        start = time.perf_counter()
        _ = vllm.llm  # start the engine outside the timed passes
        startup = time.perf_counter() - start
        vllm_rate, vllm_s = _rate(vllm, prompts, args)

        print(f"{args.prompts} prompts x {args.samples} samples x {args.max_tokens} tokens, "
              f"tiny model, median of {args.repeats}")
        print(f"  transformers (HFBackend, batch 16)  {hf_rate:9.0f} tokens/s  {hf_s:6.2f} s")
        print(f"  vLLM CPU (VLLMBackend)              {vllm_rate:9.0f} tokens/s  {vllm_s:6.2f} s"
              f"   (engine start {startup:.0f} s, not counted)")
        print(f"ratio vLLM / transformers: {vllm_rate / hf_rate:.1f}x", flush=True)
    # vLLM's CPU engine can hang in interpreter shutdown: stop its processes, then leave.
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
    os._exit(0)


if __name__ == "__main__":
    main()
