"""`python -m rstar_pl demo`: `evolve --config configs/demo.yaml`, the README's main command.

The demo is an ordinary evolve config (see `configs/demo.yaml` and
`rstar_pl/evolve.py`); this alias finds the file in the checkout and passes
any other argument on, e.g. `rstar-pl demo --name demo2`: its command line is
evolve's, built from `EvolveConfig` (`rstar-pl demo --help` lists it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CONFIG", "main"]

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = "configs/demo.yaml"


def _config(path: str) -> str:
    # Configs ship in the checkout; fall back to the working directory's copy.
    for base in (ROOT, Path.cwd()):
        if (base / path).is_file():
            return str(base / path)
    raise FileNotFoundError(f"{path}: config not found under {ROOT} or {Path.cwd()}")


def main(argv: list[str]) -> int:
    from rstar_pl.evolve import main as evolve_main

    return evolve_main(["--config", _config(DEMO_CONFIG), *argv], prog="rstar-pl demo")
