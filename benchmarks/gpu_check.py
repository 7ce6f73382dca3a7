"""GPU check of FSDP2 training: a round's policy and PPM stages at Qwen2.5-Math-1.5B's shape.

    bash benchmarks/gpu_check.sh                       # on a GPU machine: unattended, < 10 minutes
    python benchmarks/gpu_check.py --shape tiny --accelerator cpu --devices 2   # the same flow on CPU

Runs the real round command, `python -m rstar_pl fit --config configs/round2.yaml
--config OVERRIDE`, with the round's own FSDP2 setting (`modules.strategy.FSDP2Strategy`,
bf16 compute, fp32 master weights and reduce, activation checkpointing) on
every visible GPU, on:

* a randomly initialised model of Qwen2.5-Math-1.5B's shape (28 layers, hidden
  1536, 12 heads / 2 KV heads, MLP 8960, vocabulary 151,936, tied embeddings;
  built on the spot, nothing downloaded) with the tiny model's tokenizer, whose
  ids all fall inside the vocabulary;
* synthetic step-format SFT records of about `--seq` tokens and preference
  pairs of about a quarter of that.

Both stages train `--steps` steps (the first two untimed), write one sharded
checkpoint and their Hugging Face export; the PPM starts from the policy's
export, as in a real round. A callback prints one `GPU_CHECK {json}` line per
stage: median step time, tokens/s (all ranks), and the peak CUDA memory
allocated and reserved on the busiest rank; the summary at the end repeats
them with the machine, torch version and date. Exit status 0 means both
stages trained and exported.

Not yet run on a GPU: no GPU has been lent to this project so far. The CPU
form above (tiny shape, 2 gloo processes) runs the same code path end to end.
On a machine without the project installed, run it from the checkout (it sets
PYTHONPATH); it names any missing dependency and stops. An image with torch,
lightning, transformers and tensorboard but no network lacks the CLI's pure
Python packages; carry them as wheels, e.g. `pip download --no-deps
jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0
omegaconf==2.4.0 antlr4-python3-runtime==4.13.2` (the versions of
constraints-cpu.txt) and `pip install --no-deps` them there first.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]

#: Qwen2.5-Math-1.5B's architecture (its config.json), for a random model of the same shape.
QWEN25_MATH_1_5B = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
NEEDED = (
    "lightning",
    "transformers",
    "torchmetrics",
    "tensorboard",
    "safetensors",
    "yaml",
    "jsonargparse",
    "docstring_parser",
    "typeshed_client",
    "omegaconf",
    "antlr4",
)


class StepTimer(Callback):
    """Median step time, tokens/s and peak memory of a fit; rank 0 prints `GPU_CHECK {json}`.

    Args:
        stage: the name printed with the numbers.
        warmup: first steps left out of the timing (allocation, first all-gathers).
    """

    def __init__(self, stage: str, warmup: int = 2) -> None:
        self.stage, self.warmup = stage, warmup
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.start = 0.0

    def _sync(self, trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(trainer)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(trainer)
        self.times.append(time.perf_counter() - self.start)
        self.tokens.append(batch["input_ids"].numel() * trainer.world_size)

    def on_train_end(self, trainer, pl_module) -> None:
        cuda = trainer.strategy.root_device.type == "cuda"
        memory = [
            torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
            torch.cuda.max_memory_reserved() / 2**30 if cuda else 0.0,
        ]
        gathered = [memory] * trainer.world_size
        if torch.distributed.is_initialized():
            torch.distributed.all_gather_object(gathered, memory)
        timed = list(zip(self.times, self.tokens))[self.warmup :]
        step = statistics.median(t for t, _ in timed)
        if trainer.is_global_zero:
            print(
                "GPU_CHECK "
                + json.dumps(
                    {
                        "stage": self.stage,
                        "world_size": trainer.world_size,
                        "timed_steps": len(timed),
                        "step_time_s": round(step, 4),
                        "tokens_per_s": round(sum(n for _, n in timed) / sum(t for t, _ in timed)),
                        "tokens_per_step": timed[0][1],
                        "peak_allocated_gib": round(max(m[0] for m in gathered), 2),
                        "peak_reserved_gib": round(max(m[1] for m in gathered), 2),
                    }
                ),
                flush=True,
            )


def _missing() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def _build_model(out: Path, shape: str, tiny: Path, device: str) -> Path:
    """A random model of the named shape with the tiny tokenizer (and its step tokens)."""
    import shutil

    from transformers import Qwen2Config, Qwen2ForCausalLM

    if shape == "tiny":
        return tiny
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_MATH_1_5B))
    model.to(torch.bfloat16).save_pretrained(out)  # the stages load it as fp32 (dtype: float32)
    del model
    for f in tiny.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


def _write_data(tokenizer_dir: Path, out: Path, n_sft: int, n_pairs: int, seq: int) -> None:
    """SFT records of about `seq` tokens and pairs of about seq/4, in the extractor's formats."""
    from modules.tokenizer import load_tokenizer

    tok = load_tokenizer(str(tokenizer_dir))
    rng = random.Random(0)

    def steps(budget: int) -> str:
        text, k = "", 1
        while len(tok(text, add_special_tokens=False)["input_ids"]) < budget:
            text += "".join(
                f"# Step {k + i}: multiply\nx{k + i} = {rng.randint(2, 99)} * {rng.randint(2, 99)}\n"
                f"<end_of_step>\n"
                for i in range(16)
            )
            k += 16
        return text

    out.mkdir(parents=True, exist_ok=True)
    with (out / "sft.jsonl").open("w") as f:
        block = steps(int(seq * 0.85))  # prompt and answer take the rest
        for i in range(n_sft):
            response = (
                f"<code>\n{block}print(x1)\n<end_of_code>\n<output>1<end_of_output>\n"
                f"<answer>\\boxed{{{i}}}<end_of_answer>"
            )
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
    with (out / "pairs.jsonl").open("w") as f:
        prefix = steps(seq // 4)
        for i in range(n_pairs):
            prompt = f"<|user|>:\nQuestion {i}?\n<|assistant|>: <code>\n{prefix}"
            f.write(
                json.dumps(
                    {
                        "problem_id": str(i),
                        "prompt": prompt,
                        "kind": "step",
                        "chosen": f"x = {i} * 2\n<end_of_step>",
                        "rejected": f"x = {i} + 2\n<end_of_step>",
                        "chosen_q": 0.5,
                        "rejected_q": -0.5,
                    }
                )
                + "\n"
            )


def _override(args, out: Path, model: Path, devices: int) -> dict:
    """The round-2 config with this check's model, data, sizes and timer; the FSDP setting untouched."""
    from rstar_pl.train import load_round_config

    per_rank = {"policy": args.batch_size, "ppm": args.pairs}
    override: dict = {
        "run_dir": str(out / "run"),
        "data_dir": str(out / "data"),
        "base_model": str(model),
        "devices": devices,
        "num_nodes": 1,
        "ckpt_every": args.steps - 1,
    }
    for stage in ("policy", "ppm"):
        override[stage] = {
            "trainer": {
                "accelerator": args.accelerator,
                "max_steps": args.steps,
                "max_epochs": 1,
                "accumulate_grad_batches": 1,
                "val_check_interval": args.steps - 1,
                "limit_val_batches": 1,
                "num_sanity_val_steps": 0,
                "enable_progress_bar": False,
            },
            "data": {
                "init_args": {
                    "val_size": 2,
                    "batch_size": per_rank[stage],
                    "num_workers": 2,
                    "max_length": args.seq if stage == "policy" else args.seq // 2,
                }
            },
        }
    round2 = ROOT / "configs" / "round2.yaml"
    resolved = load_round_config(
        [str(round2)], {k: v for k, v in override.items() if k not in ("policy", "ppm")}
    )
    for stage in ("policy", "ppm"):
        callbacks = list(resolved[stage]["trainer"]["callbacks"])
        for cb in callbacks:  # one short sample generation is enough to exercise it
            if cb["class_path"].endswith("SampleGenerations"):
                cb["init_args"] = {"num_prompts": 1, "max_new_tokens": 16}
        callbacks.append({"class_path": "gpu_check.StepTimer", "init_args": {"stage": stage}})
        override[stage]["trainer"]["callbacks"] = callbacks
    return override


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape", choices=("qwen2.5-math-1.5b", "tiny"), default="qwen2.5-math-1.5b"
    )
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument(
        "--devices", type=int, default=0, help="default: every visible GPU (CPU: 2)"
    )
    parser.add_argument(
        "--steps", type=int, default=12, help="steps per stage, the first 2 untimed"
    )
    parser.add_argument(
        "--seq", type=int, default=4096, help="SFT sequence length (pairs: a quarter)"
    )
    parser.add_argument("--batch-size", type=int, default=2, help="SFT sequences per GPU per step")
    parser.add_argument("--pairs", type=int, default=8, help="PPM pairs per GPU per step")
    parser.add_argument("--out", default="/tmp/rstar-gpu-check")
    args = parser.parse_args()

    if missing := _missing():
        print(
            f"gpu_check: missing Python packages {missing}; install the project (pip install -e '.[gpu]') "
            "or carry them as wheels",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(ROOT))
    from rstar_pl.tiny import build_tiny_model
    from rstar_pl.train import _write_yaml

    gpu = args.accelerator == "gpu"
    if gpu and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device visible; for the CPU form pass --accelerator cpu --shape tiny",
            file=sys.stderr,
        )
        return 2
    devices = args.devices or (torch.cuda.device_count() if gpu else 2)
    out = Path(args.out) / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    tiny = build_tiny_model(out / "tiny")
    model = _build_model(out / "model", args.shape, tiny, "cuda" if gpu else "cpu")
    _write_data(
        tiny,
        out / "data",
        n_sft=(args.steps + 2) * args.batch_size * devices + 2,
        n_pairs=(args.steps + 2) * args.pairs * devices + 2,
        seq=args.seq,
    )
    print(f"gpu_check: model and data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    override = out / "gpu_check.yaml"
    _write_yaml(override, _override(args, out, model, devices))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
        ),
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if not gpu:
        env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "rstar_pl",
        "fit",
        "--config",
        str(ROOT / "configs/round2.yaml"),
        "--config",
        str(override),
    ]
    print("gpu_check: " + " ".join(cmd), flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    results = [
        json.loads(line.split("GPU_CHECK ", 1)[1]) for line in lines if "GPU_CHECK {" in line
    ]
    run = out / "run"
    exported = (run / "policy" / "config.json").is_file() and (
        run / "ppm" / "value_head.safetensors"
    ).is_file()

    name = torch.cuda.get_device_name(0) if gpu else platform.processor() or platform.machine()
    print(
        f"\ngpu_check summary: {args.shape}, {devices} x {name}, torch {torch.__version__}, "
        f"lightning {L.__version__}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{time.perf_counter() - t0:.0f} s in all"
    )
    print(
        f"  {'stage':<7} {'ranks':>5} {'tokens/step':>12} {'step s':>8} {'tokens/s':>10} "
        f"{'peak alloc GiB':>15} {'peak reserved GiB':>18}"
    )
    for r in results:
        print(
            f"  {r['stage']:<7} {r['world_size']:>5} {r['tokens_per_step']:>12} {r['step_time_s']:>8.3f} "
            f"{r['tokens_per_s']:>10} {r['peak_allocated_gib']:>15.2f} {r['peak_reserved_gib']:>18.2f}"
        )
    ok = proc.returncode == 0 and len(results) == 2 and exported
    print(f"  exports written: {exported}; exit status of the round: {proc.returncode}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
