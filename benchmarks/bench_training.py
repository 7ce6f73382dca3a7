"""Training throughput of the policy module: Lightning against a plain PyTorch loop,
and what each distributed strategy costs.

    python benchmarks/bench_training.py [--steps 12] [--repeats 3] [--part all|framework|strategies]

On a tiny random Qwen2 model (built on the spot, CPU), with the same data, the
same batches and the same optimiser, measures:

1. tokens per second of `PolicyModule` under `lightning.Trainer` and of a plain
   loop (forward, `response_lm_loss`, backward, AdamW step, schedule step):
   their ratio is the framework's overhead;
2. the effect of sequence packing: the share of real (non-padding) tokens in
   the batches, and real tokens per second, padded against packed;
3. strategies, each in fresh processes with the same global batch: one
   process with 1 thread (one core) and with 2 threads (the same two cores as
   the rest), DDP over 2 gloo processes and FSDP2 (`modules.strategy.FSDP2Strategy`)
   over 2 gloo processes (1 thread each).
   Per rank: tokens/s of the whole run (the global batch's tokens over the
   slowest rank's time), peak resident memory (ru_maxrss) and its growth over
   the fit, and the model state the rank holds (weights, gradients and AdamW
   moments, counted from its tensors: what FSDP divides).

Each configuration runs `--repeats` times, interleaved; medians are printed.
The first `--warmup` steps of every run are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from datamodules import SFTDataModule
from modules import PolicyModule
from modules.losses import response_lm_loss
from modules.optim import build_optimizer
from rstar_pl.tiny import build_tiny_model


def _write_data(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            steps = "".join(
                f"# Step {k}: multiply\nx{k} = {rng.randint(2, 99)} * {rng.randint(2, 99)}\n<end_of_step>\n"
                for k in range(rng.randint(1, 12))
            )
            response = f"<code>\n{steps}print(x1)\n<end_of_code>\n<output>1<end_of_output>\n<answer>\\boxed{{1}}<end_of_answer>"
            f.write(
                json.dumps(
                    {
                        "problem_id": str(i),
                        "question": f"Question {i}?",
                        "response": response,
                        "mean_q": 1.0,
                        "min_q": 1.0,
                    }
                )
                + "\n"
            )


class _Timer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.tokens, self.real = warmup, None, 0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        if trainer.global_step >= self.warmup:
            self.tokens += batch["input_ids"].numel()
            self.real += _count_real(batch)

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def _count_real(batch: dict) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    # Packed rows: `_mark_real_tokens` adds the count (padding only sits at row ends).
    return int(batch["real_tokens"])


def _datamodule(model_dir: Path, data: Path, packing: bool, batch_size: int) -> SFTDataModule:
    dm = SFTDataModule(
        str(model_dir), [str(data)], max_length=512, batch_size=batch_size, packing=packing
    )
    dm.setup("fit")
    return dm


def run_lightning(model_dir, dm, steps, warmup) -> tuple[float, float]:
    L.seed_everything(0)
    module = PolicyModule(str(model_dir), vocab_size=dm.vocab_size)
    timer = _Timer(warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps + warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=dm)
    return timer.tokens / timer.seconds, timer.real / timer.seconds


def run_plain(model_dir, dm, steps, warmup) -> tuple[float, float]:
    L.seed_everything(0)
    model = PolicyModule(str(model_dir), vocab_size=dm.vocab_size).model.train()
    opt = build_optimizer(
        model.parameters(),
        lr=7e-6,
        weight_decay=0.0,
        betas=(0.9, 0.999),
        schedule="linear",
        warmup_steps=0,
        min_lr_ratio=0.0,
        total_steps=steps + warmup,
    )
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    batches = iter(_cycle(dm.train_dataloader()))
    tokens = real = 0
    for step in range(steps + warmup):
        if step == warmup:
            start = time.perf_counter()
        batch = next(batches)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
            use_cache=False,
        ).logits
        loss = response_lm_loss(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if step >= warmup:
            tokens += batch["input_ids"].numel()
            real += _count_real(batch)
    seconds = time.perf_counter() - start
    return tokens / seconds, real / seconds


def _cycle(loader):
    while True:
        yield from loader


def _padding_share(dm: SFTDataModule) -> float:
    """Real tokens / all tokens over one epoch of batches."""
    real = total = 0
    for batch in dm.train_dataloader():
        total += batch["input_ids"].numel()
        real += _count_real(batch)
    return real / total


def _rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_state_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of weights, gradients and optimiser state held by this rank (local shards under FSDP)."""

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t

    tensors = [local(p) for p in module.parameters()]
    tensors += [local(p.grad) for p in module.parameters() if p.grad is not None]
    tensors += [
        local(v)
        for state in optimizer.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor) and v.dim() > 0
    ]
    return sum(t.numel() * t.element_size() for t in tensors)


class _StateProbe(Callback):
    """Model state bytes just after an optimiser step (gradients still allocated)."""

    def __init__(self) -> None:
        self.bytes = 0

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        self.bytes = max(self.bytes, _model_state_bytes(pl_module, optimizer))


def run_worker(
    strategy: str, model_dir: str, data: str, steps: int, warmup: int, batch_size: int, out: str
) -> None:
    """One process of a strategy run (under torchrun for ddp/fsdp); writes OUT.rank<R>.json."""
    from modules.strategy import FSDP2Strategy

    rss_start = _rss_mib()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(2 if strategy == "single" else 1)  # "single1": one thread
    L.seed_everything(0)
    dm = _datamodule(Path(model_dir), Path(data), packing=False, batch_size=batch_size // world)
    module = PolicyModule(model_dir, vocab_size=dm.vocab_size)
    timer, probe = _Timer(warmup), _StateProbe()
    kinds = {"single": "auto", "single1": "auto", "ddp": "ddp", "fsdp": FSDP2Strategy()}
    trainer = L.Trainer(
        accelerator="cpu",
        devices=world,
        strategy=kinds[strategy],
        max_steps=steps + warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer, probe],
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    rss_fit = _rss_mib()
    trainer.fit(module, datamodule=dm)
    Path(f"{out}.rank{trainer.global_rank}.json").write_text(
        json.dumps(
            {
                "tokens": timer.tokens,
                "seconds": timer.seconds,
                "rss_start_mib": rss_start,
                "rss_before_fit_mib": rss_fit,
                "rss_peak_mib": _rss_mib(),
                "model_state_bytes": probe.bytes,
            }
        )
    )


def run_strategy(strategy: str, model_dir: Path, data: Path, args, out: Path) -> dict:
    """Start `strategy` in fresh processes; the per-rank results and the global tokens/s."""
    worker = [
        "--worker",
        strategy,
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--out",
        str(out),
    ]
    script = [str(Path(__file__).resolve()), *worker]
    if strategy.startswith("single"):
        cmd = [sys.executable, *script]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            *script,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "2" if strategy == "single" else "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{strategy} run failed:\n{proc.stderr[-3000:]}")
    ranks = [json.loads(p.read_text()) for p in sorted(out.parent.glob(f"{out.name}.rank*.json"))]
    for p in out.parent.glob(f"{out.name}.rank*.json"):
        p.unlink()
    return {
        "tokens_per_s": sum(r["tokens"] for r in ranks) / max(r["seconds"] for r in ranks),
        "ranks": ranks,
    }


def bench_strategies(model_dir: Path, data: Path, args, tmp: Path) -> None:
    results: dict[str, list[dict]] = {"single1": [], "single": [], "ddp": [], "fsdp": []}
    for i in range(args.repeats):
        for name in results:
            results[name].append(run_strategy(name, model_dir, data, args, tmp / f"{name}-{i}"))

    def med(name: str, key: str) -> float:
        return statistics.median(
            statistics.mean(r[key] for r in run["ranks"]) for run in results[name]
        )

    print(
        f"strategies, tiny Qwen2 policy, CPU, global batch {args.batch_size}, {args.steps} timed steps "
        f"x {args.repeats} repeats (medians; memory: mean over ranks)"
    )
    print(
        f"  {'':<22} {'tokens/s':>9} {'x 1 thr.':>9} {'peak RSS MiB':>13} {'RSS growth in fit':>18} "
        f"{'model state KiB':>16}"
    )
    single = statistics.median(run["tokens_per_s"] for run in results["single1"])
    labels = {
        "single1": "1 process, 1 thread",
        "single": "1 process, 2 threads",
        "ddp": "DDP, 2 x 1 thread",
        "fsdp": "FSDP2, 2 x 1 thread",
    }
    for name, runs in results.items():
        tps = statistics.median(run["tokens_per_s"] for run in runs)
        growth = statistics.median(
            statistics.mean(r["rss_peak_mib"] - r["rss_before_fit_mib"] for r in run["ranks"])
            for run in runs
        )
        print(
            f"  {labels[name]:<22} {tps:9.0f} {tps / single:9.2f} {med(name, 'rss_peak_mib'):13.0f} "
            f"{growth:18.1f} {med(name, 'model_state_bytes') / 1024:16.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--part", choices=("all", "framework", "strategies"), default="all")
    parser.add_argument(
        "--worker", choices=("single", "single1", "ddp", "fsdp"), help=argparse.SUPPRESS
    )
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(
            args.worker, args.model, args.data, args.steps, args.warmup, args.batch_size, args.out
        )
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "tiny")
        data = tmp / "sft.jsonl"
        _write_data(data, args.examples)
        if args.part in ("all", "strategies"):
            bench_strategies(model_dir, data, args, tmp)
        if args.part == "strategies":
            return
        padded = _datamodule(model_dir, data, packing=False, batch_size=args.batch_size)
        # Rows of 512 tokens hold several examples; fewer rows per batch keeps tokens per step comparable.
        packed = _datamodule(model_dir, data, packing=True, batch_size=max(1, args.batch_size // 2))
        _mark_real_tokens(packed)

        results: dict[str, list[tuple[float, float]]] = {
            "plain": [],
            "lightning": [],
            "lightning+packing": [],
        }
        for _ in range(args.repeats):
            results["plain"].append(run_plain(model_dir, padded, args.steps, args.warmup))
            results["lightning"].append(run_lightning(model_dir, padded, args.steps, args.warmup))
            results["lightning+packing"].append(
                run_lightning(model_dir, packed, args.steps, args.warmup)
            )

        med = {
            k: (statistics.median(t for t, _ in v), statistics.median(r for _, r in v))
            for k, v in results.items()
        }
        print(
            f"tiny Qwen2 policy, CPU, {torch.get_num_threads()} threads, batch {args.batch_size}, "
            f"{args.steps} timed steps x {args.repeats} repeats (medians)"
        )
        for name, (tok, real) in med.items():
            print(f"  {name:<18} {tok:10.0f} tokens/s   {real:10.0f} real tokens/s")
        print(
            f"  Lightning / plain loop (tokens/s):          {med['lightning'][0] / med['plain'][0]:.3f}"
        )
        print(f"  real-token share, padded batches:           {_padding_share(padded):.3f}")
        print(f"  real-token share, packed rows:              {_padding_share(packed):.3f}")
        print(
            f"  packing gain (real tokens/s, packed/padded): {med['lightning+packing'][1] / med['lightning'][1]:.3f}"
        )


def _mark_real_tokens(dm: SFTDataModule) -> None:
    """Make packed batches carry their count of real tokens (the collate knows the rows)."""
    from datamodules.packing import collate_packed

    pad_id = dm.tokenizer.pad_token_id

    def collate(rows):
        batch = collate_packed(rows, pad_id)
        batch["real_tokens"] = torch.tensor(sum(len(ids) for row in rows for ids, _ in row))
        return batch

    dm._collate = lambda: collate


if __name__ == "__main__":
    main()
