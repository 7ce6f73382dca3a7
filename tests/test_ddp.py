"""DDP on CPU: two gloo processes train the policy stage of a round through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_two_cpu_processes_through_the_cli(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "rstar_pl",
        "fit",
        "--config",
        str(ROOT / "configs/round2.yaml"),
        "--config",
        str(ROOT / "configs/tiny.yaml"),
        "--stage",
        "policy",
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={ROOT / 'configs/tiny_data'}",
        "--policy.trainer.strategy=ddp",
        "--policy.trainer.devices=2",
        "--policy.trainer.max_steps=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log, log[-2000:]
    ckpt = torch.load(run / "checkpoints" / "policy" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    # The resumable loader survived Lightning's DistributedSampler swap and counted its batches.
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"batches_served": 2}]
    assert (run / "policy" / "model.safetensors").is_file()
    assert not (run / "ppm").exists()  # --stage policy ran the policy stage only
