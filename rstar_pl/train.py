"""`python -m rstar_pl fit|validate|test|predict`: training through LightningCLI.

Two kinds of config file:

* A **stage config**: an ordinary LightningCLI config (`trainer`, `model`,
  `data`, `seed_everything`, ...) for one training, the policy or the PPM.
  It goes straight to LightningCLI (omegaconf interpolation enabled), so every
  LightningCLI feature works: `--print_config`, dotted overrides such as
  `--trainer.max_steps 10`, `--ckpt_path last`; the config is saved next to
  the TensorBoard logs.

* A **round config** (`configs/round1.yaml` ... `round4.yaml`): top-level
  variables (`run_dir`, `base_model`, `data_dir`, ...) plus two sections,
  `policy:` and `ppm:`, each a full stage config. `fit --config round2.yaml`
  trains the round: the policy stage (whose `HFExport` callback writes
  `${run_dir}/policy`), then the PPM stage, which starts from that folder and
  writes `${run_dir}/ppm`. Several `--config` files are deep-merged in order
  (later wins; a non-mapping value replaces the whole subtree), then dotted
  overrides apply (`--policy.trainer.max_steps 3`), then `${...}`
  interpolations are resolved across the whole file. Each stage's resolved
  config is written to `${run_dir}/config/<stage>.yaml` and run as its own
  process (`python -m rstar_pl fit --config that.yaml`), so that each stage
  gets a fresh distributed launch and frees its memory before the next.
  `--stage policy|ppm` runs one stage; `--ckpt_path` is passed to each stage;
  `--print_config` prints the resolved round and exits; `--launch inprocess`
  runs the stages in this process instead (single-process runs, debugging). A top-level
  `tiny_model: FOLDER` builds the tiny random model there first if missing.

The tiny CPU override: `--config configs/round2.yaml --config configs/tiny.yaml`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["ROUND_STAGES", "RoundConfigError", "fit_main", "load_round_config", "main",
           "predict_main", "run_round", "test_main", "validate_main"]

#: Sections of a round config, in the order they train.
ROUND_STAGES = ("policy", "ppm")


class RoundConfigError(ValueError):
    """A round config that cannot be merged, overridden or resolved."""


# ---------------------------------------------------------------- stage configs


def _lightning_cli(subcommand: str, argv: list[str]) -> None:
    import warnings

    from lightning.pytorch.cli import LightningCLI

    # sys.argv must stay as it is (Lightning's DDP launcher re-runs it for the other ranks),
    # so LightningCLI sees the same arguments twice; that is intended here.
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")

    class RstarCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The datamodule owns the tokenizer; the model grows its embeddings to its size.
            parser.link_arguments("data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate")
            # One model path: the tokenizer always comes from the model being trained.
            parser.link_arguments("model.init_args.model", "data.init_args.model")

    RstarCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf"},
        save_config_kwargs={"overwrite": True},
        args=[subcommand, *argv],
        auto_configure_optimizers=False,
    )


# ---------------------------------------------------------------- round configs


def _config_paths(argv: list[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def _read_yaml(path: str) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise RoundConfigError(f"{path}: a config file must be a mapping at the top level")
    return data


def is_round_config(data: dict) -> bool:
    """A round config has a `policy:` or `ppm:` section (a stage config has neither)."""
    return any(stage in data for stage in ROUND_STAGES)


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    node = data
    keys = dotted.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def load_round_config(paths: list[str], overrides: dict[str, Any] | None = None) -> dict:
    """Merge round config files, apply dotted overrides, resolve interpolations.

    Returns:
        A plain dict with `policy`/`ppm` stage configs and the top-level variables.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged: dict = {}
    for path in paths:
        merged = _deep_merge(merged, _read_yaml(path))
    for key, value in (overrides or {}).items():
        _set_dotted(merged, key, value)
    if not is_round_config(merged):
        raise RoundConfigError(f"{paths}: not a round config (no 'policy:' or 'ppm:' section)")
    try:
        return OmegaConf.to_container(OmegaConf.create(merged), resolve=True)
    except OmegaConfBaseException as err:
        raise RoundConfigError(f"{paths}: cannot resolve the config: {err}".replace("\n", " ")) from None


def _write_yaml(path: Path, data: dict) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)


def run_round(
    config: dict,
    *,
    subcommand: str = "fit",
    stages: tuple[str, ...] = ROUND_STAGES,
    ckpt_path: str | None = None,
    launch: str = "subprocess",
) -> dict[str, Path]:
    """Run the stages of a resolved round config, each as its own process.

    `launch="inprocess"` runs the stages one after the other in this process
    instead (quicker to start; for single-process runs and debugging).

    Returns:
        {stage: path of the stage config written under `run_dir/config/`}.
    Raises:
        RuntimeError: a stage process failed (its output went to this process's).
    """
    if launch not in ("subprocess", "inprocess"):
        raise RoundConfigError(f"--launch {launch!r}; allowed: subprocess, inprocess")
    if "run_dir" not in config:
        raise RoundConfigError("round config has no top-level 'run_dir'")
    if len(stages) > 1 and "TORCHELASTIC_RUN_ID" in os.environ:
        # Every stage would rendezvous again through torchrun's one store, whose keys the
        # first stage has already used: the second would wait forever.
        raise RoundConfigError(
            "under torchrun a round trains one stage per launch: add --stage policy, then run "
            "the same torchrun command again with --stage ppm"
        )
    if config.get("tiny_model") and not Path(config["tiny_model"]).exists():
        from rstar_pl.tiny import build_tiny_model

        build_tiny_model(config["tiny_model"])
    written = {}
    for stage in stages:
        if stage not in config:
            raise RoundConfigError(f"round config has no '{stage}:' section; sections: {ROUND_STAGES}")
        path = Path(config["run_dir"]) / "config" / f"{stage}.yaml"
        _write_yaml(path, config[stage])
        written[stage] = path
        args = ["--config", str(path)] + (["--ckpt_path", ckpt_path] if ckpt_path is not None else [])
        if launch == "inprocess":
            _lightning_cli(subcommand, args)
            continue
        cmd = [sys.executable, "-m", "rstar_pl", subcommand, *args]
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"round stage {stage!r} failed: {' '.join(cmd)}")
    return written


def _parse_round_argv(argv: list[str]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """argv -> (config paths, dotted overrides, runner options)."""
    import yaml

    paths, overrides, options = [], {}, {"stage": None, "ckpt_path": None, "print_config": False,
                                 "launch": "subprocess"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            raise RoundConfigError(f"unexpected argument {arg!r}; overrides look like --policy.trainer.max_steps=3")
        key, has_value, value = arg.lstrip("-").partition("=")
        if key == "print_config":
            options["print_config"] = True
            i += 1
            continue
        if not has_value:
            if i + 1 >= len(argv):
                raise RoundConfigError(f"{arg} needs a value")
            value = argv[i + 1]
            i += 1
        i += 1
        if key in ("config", "c"):
            paths.append(value)
        elif key in ("stage", "ckpt_path", "launch"):
            options[key] = value
        else:
            overrides[key] = yaml.safe_load(value)
    if options["stage"] not in (None, *ROUND_STAGES):
        raise RoundConfigError(f"--stage {options['stage']!r}; allowed: {', '.join(ROUND_STAGES)}")
    return paths, overrides, options


# ---------------------------------------------------------------- entry points


def main(subcommand: str, argv: list[str]) -> int:
    """Run `subcommand` (fit, validate, test, predict) with LightningCLI arguments `argv`."""
    paths = _config_paths(argv)
    if paths and all(Path(p).is_file() for p in paths) and any(
        is_round_config(_read_yaml(p)) for p in paths
    ):
        import yaml

        paths, overrides, options = _parse_round_argv(argv)
        config = load_round_config(paths, overrides)
        if options["print_config"]:
            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        stages = (options["stage"],) if options["stage"] else ROUND_STAGES
        run_round(config, subcommand=subcommand, stages=stages, ckpt_path=options["ckpt_path"],
                  launch=options["launch"])
        return 0
    _lightning_cli(subcommand, argv)
    return 0


def fit_main(argv: list[str]) -> int:
    return main("fit", argv)


def validate_main(argv: list[str]) -> int:
    return main("validate", argv)


def test_main(argv: list[str]) -> int:
    return main("test", argv)


def predict_main(argv: list[str]) -> int:
    return main("predict", argv)
