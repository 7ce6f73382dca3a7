"""Throughput of the HF backend: batched, left-padded generation against one prompt at a time.

    python benchmarks/bench_hf_backend.py [--prompts 16] [--max-tokens 32] [--repeats 3]

Builds the tiny random model in a temporary folder, then, side by side in one
process, generates greedily for the same step-format prompts (a few benchmark
questions) with `HFBackend(batch_size=1)` (the baseline) and with
`HFBackend(batch_size=B)` for B in 4 and 16. Prints generated tokens per second
(median over `--repeats` passes) and the ratio to the baseline. Greedy outputs
of every setting are checked to be identical, so the speed-up costs nothing.
The machine may be shared: read the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    from rstar_pl.backends.hf import HFBackend
    from rstar_pl.steps import STOP_STRINGS, build_prompt
    from rstar_pl.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    questions = [
        f"What is {a} times {a + 7}, plus the number of primes below {3 * a}?"
        for a in range(2, 2 + args.prompts)
    ]
    prompts = [build_prompt(q) for q in questions]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        rows, reference = [], None
        for batch_size in (1, 4, 16):
            backend = HFBackend(model_dir, device="cpu", batch_size=batch_size)
            rates = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = backend.generate(prompts, stop=STOP_STRINGS, max_tokens=args.max_tokens)
                seconds = time.perf_counter() - start
                rates.append(sum(c[0].num_tokens for c in out) / seconds)
            texts = [c[0].text for c in out]
            reference = reference or texts
            rows.append((batch_size, statistics.median(rates), texts == reference))
    base = rows[0][1]
    print(
        f"HF backend, tiny model, {args.prompts} prompts, max_tokens={args.max_tokens}, "
        f"torch threads={args.threads}, median of {args.repeats}"
    )
    print(f"{'batch_size':>10}  {'tokens/s':>9}  {'vs batch 1':>10}  same greedy text")
    for batch_size, rate, same in rows:
        print(f"{batch_size:>10}  {rate:>9.1f}  {rate / base:>9.2f}x  {same}")


if __name__ == "__main__":
    main()
