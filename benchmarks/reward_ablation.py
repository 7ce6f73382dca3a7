"""The reward-model ablation (the paper's Table 8) on the scripted problems, end to end on a CPU.

    python benchmarks/reward_ablation.py --out runs/reward-ablation

What it runs, each a project command (printed before it runs) or the function behind one:

1. the ten built-in scripted problems split by index: the first half trains, the second half is
   held out (no tree, pair or score of it is trained on);
2. `generate` with `configs/search/scripted.yaml` (the scripted policy, real sandboxed code,
   real grading) on the training half, one run per `--train-seeds`, and on the held-out half,
   one run per `--heldout-seeds`;
3. `extract` of each: pairs, `step_values.jsonl` and `outcomes.jsonl` from the same trees;
4. `tiny-model`, then `fit --stage ppm` three times over round 2's config and the tiny override,
   once per `configs/ppm/<loss>.yaml` (pairwise, q_regression, outcome), the same steps, batch
   and learning rate for each, all from the same random base model;
5. per reward model: its step-pair accuracy on the held-out trees' step pairs (chosen scored
   above rejected), and `harness scaling` (`harness.scaling.run_scaling`) on the held-out half
   with the scripted policy as the sampler: the same seed gives every reward model the same
   candidate pool, so their best-of-k and weighted-vote curves rank the same candidates, and
   `--mcts` adds PPM-guided MCTS, where the reward model also steers the search.

Writes `ablation.md` / `ablation.json` (the table), `ablation.png` (the scaling curves, one
panel per reward model) and per reward model a `scaling-<loss>/` folder (pools, `scaling.png`). The problems are few and synthetic (wrong steps are the correct
code with a number changed): a check that the three losses train and can be compared on the
same candidates, not a benchmark score.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("pairwise", "q_regression", "outcome")


def _run(args: list[str], done: Path) -> None:
    shown = f"python -m rstar_pl {shlex.join(args)}"
    if done.exists():
        print(f"[ablation] skip (exists: {done}): {shown}", flush=True)
        return
    print(f"[ablation] $ {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "rstar_pl", *args], check=True, cwd=ROOT)


def _split(out: Path) -> tuple[Path, Path]:
    problems = json.loads((ROOT / "rstar_pl" / "data" / "scripted_problems.json").read_text())
    half = len(problems) // 2
    paths = out / "train.json", out / "heldout.json"
    for path, part in zip(paths, (problems[:half], problems[half:])):
        path.write_text(json.dumps(part, indent=1) + "\n")
    return paths


def _trees(problems: Path, out_dir: Path, seed: int) -> None:
    _run(
        [
            "generate",
            "--config",
            str(ROOT / "configs/search/scripted.yaml"),
            f"--out_dir={out_dir}",
            f"--seed={seed}",
            f"--problems.source={problems}",
        ],
        done=out_dir / "DONE",
    )
    (out_dir / "DONE").touch()


def _fit(
    loss: str, out: Path, base: Path, data: Path, steps: int, batch: int, lr: float, max_length: int
) -> Path:
    run = out / f"ppm-{loss}"
    _run(
        [
            "fit",
            "--config",
            str(ROOT / "configs/round2.yaml"),
            "--config",
            str(ROOT / "configs/tiny.yaml"),
            "--config",
            str(ROOT / "configs/ppm" / f"{loss}.yaml"),
            "--stage",
            "ppm",
            f"--run_dir={run}",
            f"--tiny_model={base}",
            f"--data_dir={data}",
            f"--ppm.model.init_args.model={base}",
            f"--ppm.model.init_args.lr={lr}",
            f"--ppm.trainer.max_steps={steps}",
            "--ppm.trainer.max_epochs=1000",
            "--ppm.trainer.val_check_interval=null",
            "--ppm.trainer.check_val_every_n_epoch=1000",
            "--ppm.trainer.enable_progress_bar=false",
            "--ppm.data.init_args.val_size=0",
            f"--ppm.data.init_args.batch_size={batch}",
            f"--ppm.data.init_args.max_length={max_length}",
            f"--ckpt_every={10 * steps}",
            "--launch",
            "inprocess",
        ],
        done=run / "ppm" / "config.json",
    )
    return run / "ppm"


def _pair_accuracy(scorer, pairs_file: Path) -> tuple[float, int]:
    from rstar_pl.data.records import read_records

    pairs = [p for p in read_records(pairs_file) if p["kind"] == "step"]
    chosen = scorer.score([p["prompt"] + p["chosen"] for p in pairs])
    rejected = scorer.score([p["prompt"] + p["rejected"] for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(pairs), len(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/reward-ablation")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument(
        "--heldout-seeds",
        type=int,
        nargs="+",
        default=[100, 101, 102, 103],
        help="tree runs on the held-out half whose step pairs are scored",
    )
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--max-length",
        type=int,
        default=384,
        help="tokens per scored text (cut from the left, as the pairs are)",
    )
    parser.add_argument("--max-trajectories", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--resamples", type=int, default=500)
    args = parser.parse_args()

    from harness.scaling import ScalingConfig, run_scaling
    from rstar_pl.backends.ppm import PPMScorer
    from rstar_pl.backends.scripted import ScriptedBackend, scripts_from_problems
    from rstar_pl.data.problems import ProblemsConfig, load_problems

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = _split(out)
    tree_dirs = []
    for seed in args.train_seeds:
        tree_dirs.append(out / f"trees-train-{seed}")
        _trees(train, tree_dirs[-1], seed)
    held_dirs = []
    for seed in args.heldout_seeds:
        held_dirs.append(out / f"trees-heldout-{seed}")
        _trees(heldout, held_dirs[-1], seed)
    data, heldout_data = out / "data", out / "data-heldout"
    _run(
        ["extract", "--trees", *map(str, tree_dirs), "--out", str(data)], done=data / "report.json"
    )
    _run(
        ["extract", "--trees", *map(str, held_dirs), "--out", str(heldout_data)],
        done=heldout_data / "report.json",
    )
    base = out / "base"
    _run(["tiny-model", "--out", str(base), "--seed", "0"], done=base / "config.json")

    held = load_problems(ProblemsConfig(source=str(heldout), id_field="index")).problems
    rows, panels = [], {}
    for loss in LOSSES:
        ppm = _fit(loss, out, base, data, args.steps, args.batch_size, args.lr, args.max_length)
        scorer = PPMScorer.from_path(ppm, device="cpu")
        accuracy, n_pairs = _pair_accuracy(scorer, heldout_data / "pairs.jsonl")
        backend = ScriptedBackend(
            scripts_from_problems(held), p_wrong=0.3, p_error=0.1, p_variant=0.2, seed=0
        )
        config = ScalingConfig(
            checkpoint="scripted-policy",
            ppm=str(ppm),
            tasks=[str(heldout)],
            out=str(out / f"scaling-{loss}"),
            max_trajectories=args.max_trajectories,
            mcts=True,
            rollouts=args.rollouts,
            samples=4,
            max_code_runs=4,
            resamples=args.resamples,
            progress=False,
            seed=0,
        )
        curves = run_scaling(config, backend=backend, scorer=scorer)["heldout"]["curves"]
        panels[f"held-out, PPM loss: {loss}"] = curves
        at = {method: points[-1] for method, points in curves.items()}
        rows.append(
            {
                "loss": loss,
                "pair_accuracy": accuracy,
                "pairs": n_pairs,
                "k": args.max_trajectories,
                **{m: [p["accuracy"], p["low"], p["high"]] for m, p in at.items()},
            }
        )
        print(
            f"[ablation] {loss}: held-out step-pair accuracy {accuracy:.3f} ({n_pairs} pairs); "
            + ", ".join(f"{m} {100 * p['accuracy']:.1f}" for m, p in at.items()),
            flush=True,
        )

    methods = [m for m in rows[0] if m not in ("loss", "pair_accuracy", "pairs", "k")]
    lines = [
        "| reward model | held-out step pairs right | "
        + " | ".join(f"{m} @{args.max_trajectories}" for m in methods)
        + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for r in rows:
        cells = [f"{100 * r[m][0]:.1f} [{100 * r[m][1]:.1f}, {100 * r[m][2]:.1f}]" for m in methods]
        lines.append(
            f"| {r['loss']} | {100 * r['pair_accuracy']:.1f}% of {r['pairs']} | "
            + " | ".join(cells)
            + " |"
        )
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    from harness.figure import plot_scaling

    plot_scaling(
        panels,
        out / "ablation.png",
        title=f"scripted policy, {len(held)} held-out "
        f"problems, pool of {args.max_trajectories}; one reward model per panel",
    )
    (out / "ablation.json").write_text(
        json.dumps({"settings": vars(args), "rows": rows}, indent=1) + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
