"""`python -m rstar_pl demo`: the whole self-evolution loop on a CPU in minutes.

Each stage is one of the project's own commands, run as a subprocess and
printed before it runs, so the demo doubles as a worked example of the
commands a researcher types at full scale:

1. build a tiny random Qwen2 base model (`tiny-model`);
2. round 1: MCTS trees from the scripted policy, the stand-in for the paper's
   236B few-shot teacher (`generate`), then SFT records, PPM pairs and
   difficulty (`extract`);
3. train the round: policy SFT from the base model, then the PPM from the new
   policy (`fit` with a round config and the tiny override);
4. round 2: MCTS with the trained policy (transformers backend) and the new PPM
   initialising Q-values (`generate`, PPM-augmented annotation), then
   `extract` again;
5. with `--data-dir` (or RSTAR_DATA_DIR): `harness eval` of the new policy on
   a few MATH500 problems.

Every stage's outputs are kept under `--out`; a stage whose outputs exist is
skipped, so an interrupted demo resumes where it stopped. A tiny random model
trained for a few steps solves nothing; the demo shows the plumbing, its
numbers are not results.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], *, done: Path | None = None) -> None:
    """Run `python -m rstar_pl ARGS`, printed first exactly as it runs (paste it to rerun)."""
    shown = f"python -m rstar_pl {shlex.join(args)}"
    if done is not None and done.exists():
        print(f"[demo] skip (exists: {done}): {shown}", flush=True)
        return
    print(f"\n[demo] $ {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "rstar_pl", *args], check=True)


def _count(path: Path) -> int:
    return sum(1 for line in path.open() if line.strip()) if path.exists() else 0


def _solved(trees_dir: Path) -> tuple[int, int]:
    """(problems with a correct trajectory, problems); a problem may have several trees."""
    solved, seen = set(), set()
    for shard in sorted(trees_dir.glob("*.jsonl")):
        for line in shard.open():
            if line.strip():
                tree = json.loads(line)
                seen.add(tree["problem_id"])
                if any(node.get("correct") for node in tree["nodes"]):
                    solved.add(tree["problem_id"])
    return len(solved), len(seen)


def _config(path: str) -> str:
    # Configs ship in the checkout; fall back to the working directory's copy.
    for base in (ROOT, Path.cwd()):
        if (base / path).is_file():
            return str(base / path)
    raise FileNotFoundError(f"{path}: config not found under {ROOT} or {Path.cwd()}")


def main(argv: list[str]) -> int:
    from rstar_pl.cli import ArgumentParser, positive_int

    parser = ArgumentParser(prog="rstar-pl demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="folder for every stage's outputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", type=positive_int, default=8, help="problems per round")
    parser.add_argument("--data-dir", default=os.environ.get("RSTAR_DATA_DIR"),
                        help="benchmark files for the final harness eval (skipped without)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    base, r1, r2 = out / "base", out / "round1", out / "round2"
    seed = str(args.seed)

    _run(["tiny-model", "--out", str(base), "--seed", seed], done=base / "config.json")

    _run(["generate", "--config", _config("configs/search/scripted.yaml"),
          "--out_dir", str(r1 / "trees"), "--seed", seed, "--problems.limit", str(args.problems)])
    _run(["extract", "--trees", str(r1 / "trees"), "--out", str(r1 / "data")])

    _run(["fit", "--config", _config("configs/round2.yaml"), "--config", _config("configs/tiny.yaml"),
          "--run_dir", str(r1), "--data_dir", str(r1 / "data"), "--tiny_model", str(base)],
         done=r1 / "ppm")

    _run(["generate", "--config", _config("configs/search/scripted.yaml"),
          "--out_dir", str(r2 / "trees"), "--seed", seed, "--problems.limit", str(args.problems),
          "--schedule", "[4]", "--search.n", "2", "--search.max_depth", "4",
          "--search.annotation", "ppm", "--search.sampling.max_tokens", "48",
          "--backend.kind", "rstar_pl.backends.hf:HFBackend",
          "--backend.args", json.dumps({"model": str(r1 / "policy"), "dtype": "float32"}),
          "--scorer.kind", "rstar_pl.backends.ppm:PPMScorer.from_path",
          "--scorer.args", json.dumps({"path": str(r1 / "ppm")})])
    _run(["extract", "--trees", str(r2 / "trees"), "--out", str(r2 / "data")])

    if args.data_dir:
        _run(["harness", "eval", "--checkpoint", str(r1 / "policy"), "--tasks", "math500",
              "--limit", "4", "--max-tokens", "64", "--data-dir", args.data_dir,
              "--out", str(out / "eval")])
    else:
        print("\n[demo] no --data-dir / RSTAR_DATA_DIR: harness eval skipped", flush=True)

    print("\n[demo] summary")
    for name, round_dir in (("round 1 (scripted teacher)", r1), ("round 2 (trained tiny policy + PPM)", r2)):
        solved, total = _solved(round_dir / "trees")
        data = round_dir / "data"
        print(f"  {name}: solved {solved}/{total} problems; "
              f"{_count(data / 'sft.jsonl')} SFT records, {_count(data / 'pairs.jsonl')} pairs")
    print(f"  models: {r1 / 'policy'} (policy), {r1 / 'ppm'} (PPM); TensorBoard: {r1 / 'logs'}")
    return 0
