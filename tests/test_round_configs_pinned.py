"""The round configs, pinned: `fit --config configs/round<k>.yaml --print_config` must print
exactly the files in `tests/data/round_configs/`, key for key and in the same order.

The four round files share their settings through a base file, so an edit meant for one
round can reach all four, and an edit to the sharing itself can drop or move a setting.
Both show here. A change that is *meant* to move a round's settings regenerates the file on
purpose, and says so in its commit:

    python -m rstar_pl fit --config configs/round2.yaml --print_config \
        > tests/data/round_configs/round2.yaml

(`round2_tiny.yaml`: the same with `--config configs/tiny.yaml` after the round file.)
The printed configs hold no machine-specific path (`run_dir` and the others are relative).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rstar_pl.train import main

ROOT = Path(__file__).resolve().parents[1]
PINNED = Path(__file__).resolve().parent / "data" / "round_configs"
CASES = {
    "round1": ["configs/round1.yaml"],
    "round2": ["configs/round2.yaml"],
    "round3": ["configs/round3.yaml"],
    "round4": ["configs/round4.yaml"],
    "round2_tiny": ["configs/round2.yaml", "configs/tiny.yaml"],
}


def _argv(files: list[str]) -> list[str]:
    return [arg for f in files for arg in ("--config", str(ROOT / f))] + ["--print_config"]


@pytest.mark.parametrize("name", CASES)
def test_print_config_is_the_pinned_one(name, capsys):
    assert main("fit", _argv(CASES[name])) == 0
    printed = capsys.readouterr().out
    assert printed == (PINNED / f"{name}.yaml").read_text(encoding="utf-8")


def test_the_round_command_as_users_type_it(tmp_path):
    """One relative `--config`, from the checkout, in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rstar_pl",
            "fit",
            "--config",
            "configs/round3.yaml",
            "--print_config",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == (PINNED / "round3.yaml").read_text(encoding="utf-8")
