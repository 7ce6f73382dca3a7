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
  `policy:` and `ppm:`, each a full stage config. A round file may name the
  file it builds on under `config:` (relative to its own folder, as in a
  LightningCLI config): `configs/round<k>.yaml` hold only `run_dir` and
  `data_dir` and name `configs/round_base.yaml`, which holds everything the
  four rounds share; the base loads first and the round's keys are merged over
  it (`read_round_file`). `fit --config round2.yaml` trains the round: the
  policy stage (whose `HFExport` callback writes `${run_dir}/policy`), then
  the PPM stage, which starts from that folder and writes `${run_dir}/ppm`.
  Several `--config` files are deep-merged in order (later wins; a
  non-mapping value replaces the whole subtree), then dotted overrides apply
  (`--policy.trainer.max_steps 3`), then `${...}` interpolations are resolved
  across the whole file. Each stage's resolved
  config is written to `${run_dir}/config/<stage>.yaml` and run as its own
  process (`python -m rstar_pl fit --config that.yaml`), so that each stage
  gets a fresh distributed launch and frees its memory before the next.
  `--stage policy|ppm` runs one stage; `--ckpt_path` is passed to each stage;
  `--print_config` prints the resolved round and exits; `--launch inprocess`
  runs the stages in this process instead (single-process runs, debugging). A top-level
  `tiny_model: FOLDER` builds the tiny random model there first if missing.

A round refuses what it does not understand before any stage starts: a
top-level key that no config file defines (`--data-dir`, `--data_dri`) is an
error with the closest known key, and every stage config is parsed by
LightningCLI's own parser first (unknown keys, wrong types, a model path that
is neither a folder nor a hub id), so a typo in the PPM section does not wait
for the policy to finish training. Errors are one line naming the stage and
the key.

While `fit` trains a round it holds the lock `${run_dir}/.fit.lock`
(`rstar_pl.files.lock`), shared with the stage process it starts: a second
`fit` of the same run_dir (a restart with `--ckpt_path last` while an earlier
stage still writes checkpoints) is refused, naming the live writer. A stage
process dies with the process that started it (Linux `PR_SET_PDEATHSIG`), so
`kill -9` of `fit` takes the training with it. The runner prints a banner per
stage and, at the end, where the exports are (`policy -> DIR, PPM -> DIR`).

`fit --help` says how to run a round; `fit --config ROUND.yaml --help` also
lists the round's variables and their values; with a stage config, `--help` is
LightningCLI's.

The tiny CPU override: `--config configs/round2.yaml --config configs/tiny.yaml`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rstar_pl.errors import UserError

__all__ = [
    "BASE_KEY",
    "ROUND_STAGES",
    "RoundConfigError",
    "StageConfigError",
    "fit_main",
    "load_round_config",
    "main",
    "predict_main",
    "read_round_file",
    "run_round",
    "test_main",
    "validate_main",
]

#: Sections of a round config, in the order they train.
ROUND_STAGES = ("policy", "ppm")

#: The options of the round runner itself (besides the round's own variables).
_RUNNER_OPTIONS = ("config", "stage", "ckpt_path", "launch", "print_config")


class RoundConfigError(UserError):
    """A round config that cannot be merged, overridden or resolved."""


class StageConfigError(UserError):
    """A stage config that LightningCLI's parser refuses, as one line."""


# ---------------------------------------------------------------- stage configs


def _lightning_cli(
    subcommand: str,
    argv: list[str],
    *,
    check: bool = False,
    will_exist: frozenset[str] = frozenset(),
) -> None:
    """Run LightningCLI on a stage config; with `check`, only parse and validate it.

    Bad settings raise `StageConfigError` (one line) instead of printing the usage.
    `will_exist`: model folders an earlier stage of this run writes (not checked).
    """
    import warnings

    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    # sys.argv must stay as it is (Lightning's DDP launcher re-runs it for the other ranks),
    # so LightningCLI sees the same arguments twice; that is intended here.
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    parsers: list = []

    class RstarCLI(LightningCLI):
        def init_parser(self, **kwargs):
            parser = super().init_parser(**kwargs)
            parsers.append(parser)
            return parser

        def add_arguments_to_parser(self, parser) -> None:
            # The datamodule owns the tokenizer; the model grows its embeddings to its size.
            parser.link_arguments(
                "data.vocab_size", "model.init_args.vocab_size", apply_on="instantiate"
            )
            # One model path: the tokenizer always comes from the model being trained.
            parser.link_arguments("model.init_args.model", "data.init_args.model")

        def before_instantiate_classes(self) -> None:
            model = self.config[self.subcommand].get("model") or {}
            path = (model.get("init_args") or {}).get("model")
            if isinstance(path, str) and path not in will_exist:
                problem = _model_source_problem(path)
                if problem:
                    raise StageConfigError(f"model.init_args.model: {path!r} {problem}")

        if check:

            def _set_seed(self) -> None:
                pass

            def instantiate_classes(self) -> None:
                pass

            def _run_subcommand(self, subcommand: str) -> None:
                pass

    strict = {"exit_on_error": False}
    try:
        RstarCLI(
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={"parser_mode": "omegaconf", **strict, subcommand: strict},
            save_config_kwargs={"overwrite": True},
            args=[subcommand, *argv],
            auto_configure_optimizers=False,
        )
    except ArgumentError as err:
        raise StageConfigError(_stage_error_line(err, parsers)) from None


def _model_source_problem(path: str) -> str | None:
    """Why `path` can be neither loaded from a folder nor from the hub, or None."""
    if Path(path).expanduser().exists():
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(path)
    except HFValidationError:
        return "is no folder here and not a Hugging Face hub id (namespace/name)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(path, "config.json"), str):
            return "is no folder here, and the hub is offline (HF_HUB_OFFLINE) with no copy cached"
    return None


_UNION_CLASS = re.compile(
    r"Problem with given class_path '(?P<cls>[\w.]+)':\s*(?P<why>.*?)"
    r"(?:\n\s*- |\n\s*Given value|$)",
    re.S,
)
_NOT_ACCEPTED = re.compile(r"Option '(?P<opt>[^']+)' is not accepted")
_NO_OPTION = re.compile(r"does not accept option '(?P<opt>[^']+)'")


def _stage_error_line(err: Exception, parsers: list) -> str:
    """LightningCLI's (jsonargparse's) error about a stage config as one line naming the key."""
    from rstar_pl.cli import argument_error_line, did_you_mean

    text = str(err)
    key = re.match(r'Parser key "(?P<key>[^"]+)":', text)
    union = _UNION_CLASS.search(text)
    if key and union:
        inner, cls = union["why"].strip(), union["cls"]
        opt = _NOT_ACCEPTED.search(inner)
        if opt:
            known = [k for k in _init_parameters(cls) if k != "self"]
            hint = did_you_mean(opt["opt"], known) or (
                f"; it takes {', '.join(known)}" if known else ""
            )
            return f"{key['key']}.init_args.{opt['opt']}: {cls} takes no such argument{hint}"
        nested = argument_error_line(ValueError(inner))
        return f"{key['key']}.init_args.{nested}"
    missing = _NO_OPTION.search(text)
    if missing:
        known = [a.dest for p in parsers for a in p._actions if a.dest not in ("help", "config")]
        return f"{missing['opt']}: no such setting{did_you_mean(missing['opt'], known)}"
    return argument_error_line(err)


def _init_parameters(class_path: str) -> list[str]:
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        return list(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return []


# ---------------------------------------------------------------- round configs


def _config_paths(argv: list[str]) -> list[str]:
    """The `--config` files of a command line, read first: a round's files define its options."""
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("-c", "--config", action="append", default=[])
    return first.parse_known_args(argv)[0].config


def _read_yaml(path: str) -> dict:
    import yaml

    from rstar_pl.files import read_utf8

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(read_utf8(p)) or {}
    except yaml.YAMLError as err:
        raise RoundConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise RoundConfigError(f"{path}: a config file must be a mapping at the top level")
    return data


#: The key by which a round config file names the file(s) it builds on, as in a LightningCLI
#: config (jsonargparse's `config:` key); configs/round<k>.yaml name configs/round_base.yaml.
BASE_KEY = "config"


def read_round_file(path: str, _chain: tuple[Path, ...] = ()) -> dict:
    """One round config file, with the files it names under `config:` merged in first.

    `config: round_base.yaml` (or a list of files) loads those files, relative to the folder
    of the file naming them, as jsonargparse does in a LightningCLI config; this file's own
    keys are then deep-merged over them, as a later `--config` would be. So a round file holds
    only what differs from the base, and `fit --config configs/round2.yaml` stays one file to
    type. A base may name its own base; a file that names itself again is an error.
    """
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) for b in bases):
        raise RoundConfigError(
            f"{path}: {BASE_KEY}: {bases!r}; allowed: a config file or a list "
            "of them, relative to this file's folder"
        )
    chain = (*_chain, Path(path).resolve())
    merged: dict = {}
    for base in bases:
        base_path = Path(path).parent / base
        if not base_path.is_file():
            raise RoundConfigError(f"{path}: {BASE_KEY}: {base}: no such file ({base_path})")
        if base_path.resolve() in chain:
            raise RoundConfigError(
                f"{path}: {BASE_KEY}: {base}: the file is already being "
                f"loaded ({' -> '.join(str(c) for c in chain)})"
            )
        merged = _deep_merge(merged, read_round_file(str(base_path), chain))
    return _deep_merge(merged, data)


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


def _no_such_key(key: str, merged: dict, paths: list[str]) -> RoundConfigError:
    """A key no config file defines is a typo (--data_dri) or another command's spelling
    (--data-dir): refused, not silently added and ignored."""
    from rstar_pl.cli import did_you_mean

    variables = [k for k in merged if k not in ROUND_STAGES]
    hint = did_you_mean(key.split(".", 1)[0], variables + list(_RUNNER_OPTIONS), "--")
    return RoundConfigError(
        f"--{key}: no such key in the round config {', '.join(paths)}{hint}; its keys: "
        f"{', '.join(variables)}; stage settings are --policy.KEY / --ppm.KEY"
    )


def load_round_config(paths: list[str], overrides: dict[str, Any] | None = None) -> dict:
    """Merge round config files, apply dotted overrides, resolve interpolations.

    Returns:
        A plain dict with `policy`/`ppm` stage configs and the top-level variables.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged: dict = {}
    for path in paths:
        merged = _deep_merge(merged, read_round_file(path))
    if not is_round_config(merged):
        raise RoundConfigError(f"{paths}: not a round config (no 'policy:' or 'ppm:' section)")
    for key, value in (overrides or {}).items():
        top = key.split(".", 1)[0]
        if top not in merged and top not in ROUND_STAGES:
            raise _no_such_key(key, merged, paths)
        _set_dotted(merged, key, value)
    try:
        return OmegaConf.to_container(OmegaConf.create(merged), resolve=True)
    except OmegaConfBaseException as err:
        raise RoundConfigError(
            f"{paths}: cannot resolve the config: {err}".replace("\n", " ")
        ) from None


def _write_yaml(path: Path, data: dict) -> None:
    from rstar_pl.files import write_yaml

    write_yaml(path, data)


def _exports(stage_config: dict) -> list[str]:
    """The folders a stage's `HFExport` callbacks write at the end of `fit`."""
    callbacks = (stage_config.get("trainer") or {}).get("callbacks") or []
    return [
        str(c["init_args"]["dirpath"])
        for c in callbacks
        if isinstance(c, dict)
        and str(c.get("class_path", "")).endswith("HFExport")
        and c.get("init_args")
    ]


def _check_stages(config: dict, subcommand: str, stages: tuple[str, ...]) -> dict[str, Path]:
    """Write each stage's config and parse it with LightningCLI, all before the first
    stage starts; returns {stage: config path}."""
    written, will_exist = {}, set()
    for stage in stages:
        if stage not in config:
            raise RoundConfigError(
                f"round config has no '{stage}:' section; sections: {ROUND_STAGES}"
            )
        path = Path(config["run_dir"]) / "config" / f"{stage}.yaml"
        _write_yaml(path, config[stage])
        try:
            _lightning_cli(
                subcommand, ["--config", str(path)], check=True, will_exist=frozenset(will_exist)
            )
        except StageConfigError as err:
            why = str(err)
            if why.startswith("model.init_args.model") and subcommand != "fit":
                why += f"; it is written by `fit` ({' or '.join(ROUND_STAGES)} stage exports)"
            raise RoundConfigError(f"stage {stage} ({path}): {stage}.{why}") from None
        if subcommand == "fit":
            will_exist.update(_exports(config[stage]))
        written[stage] = path
    return written


def _die_with_parent() -> None:
    """In a stage process, before it runs: be killed when the runner dies (even by kill -9)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the runner died before the line above: go now
        os._exit(1)


def _run_stage(subcommand: str, args: list[str], stage: str, lock: Any | None) -> None:
    """One stage in its own process, which holds the run's lock with us and dies with us."""
    cmd = [sys.executable, "-m", "rstar_pl", subcommand, *args]
    keep = (lock.fd,) if lock is not None else ()
    proc = subprocess.Popen(cmd, pass_fds=keep, preexec_fn=_die_with_parent)
    try:
        if lock is not None:
            lock.note(f"stage {stage}: pid {proc.pid}")
        code = proc.wait()
    except BaseException:  # Ctrl-C or an error here: the stage does not outlive its runner
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)


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
        RoundConfigError: a stage config that LightningCLI refuses (before any stage runs).
        OutputInUseError: another `fit` (or a stage it started) is writing `run_dir`.
        subprocess.CalledProcessError: a stage process failed (its output went to ours).
    """
    from contextlib import nullcontext

    from rstar_pl.files import exclusive_output

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
    run_dir = Path(config["run_dir"])
    # Under torchrun or srun every rank runs this command: the first holds the lock for them all.
    first_rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0
    locking = (
        exclusive_output(run_dir, "fit", what="run_dir")
        if subcommand == "fit" and first_rank
        else nullcontext()
    )
    with locking as lock:
        if config.get("tiny_model") and not Path(config["tiny_model"]).exists():
            from rstar_pl.tiny import build_tiny_model

            build_tiny_model(config["tiny_model"])
        written = _check_stages(config, subcommand, stages)
        for number, (stage, path) in enumerate(written.items(), 1):
            print(
                f"\n==== rstar-pl {subcommand}: stage {number}/{len(written)}, {stage} "
                f"({path}) ====",
                flush=True,
            )
            args = ["--config", str(path)] + (
                ["--ckpt_path", ckpt_path] if ckpt_path is not None else []
            )
            if launch == "inprocess":
                _lightning_cli(subcommand, args)
            else:
                _run_stage(subcommand, args, stage, lock)
    if subcommand == "fit":
        done = [
            f"{'PPM' if stage == 'ppm' else stage} -> {', '.join(_exports(config[stage]))}"
            for stage in written
            if _exports(config[stage])
        ]
        print(f"\nrstar-pl fit: {', '.join(done) or 'done (no HFExport callback)'}", flush=True)
    return written


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) if isinstance(text, str) else text


def _runner_parser(
    subcommand: str, variables: dict[str, Any], stage_options: frozenset[str] = frozenset()
):
    """The round runner's options, `--KEY VALUE` for each top-level variable of the round and
    each `--policy.KEY` / `--ppm.KEY` option of `stage_options`: a jsonargparse parser, the
    library LightningCLI's own parser is built on."""
    from jsonargparse import ArgumentParser, DefaultHelpFormatter

    class Formatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
        def _get_help_string(self, action):  # the value itself is the help of a variable
            return action.help

    parser = ArgumentParser(
        prog=f"rstar-pl {subcommand}",
        add_help=False,
        allow_abbrev=False,
        exit_on_error=False,
        print_config=None,
        formatter_class=Formatter,
        usage=f"rstar-pl {subcommand} --config ROUND.yaml [--config MORE.yaml ...] [--KEY VALUE ...]\n"
        f"       [--policy.KEY VALUE ...] [--ppm.KEY VALUE ...] [--stage policy|ppm]\n"
        f"       [--ckpt_path last|PATH] [--launch subprocess|inprocess] [--print_config]\n"
        f"   or: rstar-pl {subcommand} --config STAGE.yaml [LightningCLI options] (--help there: "
        "LightningCLI's)",
        description=(
            "A round of rStar-Math: policy SFT, then the PPM trained from the new policy "
            "(configs/round1.yaml ... round4.yaml;\nthe tiny CPU override is configs/tiny.yaml). "
            "Each stage runs as its own LightningCLI process.\nA stage config (trainer/model/data "
            "at the top) goes to LightningCLI as it is."
        ),
        epilog=(
            "stage settings:\n  --policy.KEY VALUE, --ppm.KEY VALUE   any setting of one stage, "
            "e.g. --policy.trainer.max_steps 3\n"
            "                                      (see them all with --print_config)\n\n"
            f"example:\n  rstar-pl {subcommand} --config configs/round2.yaml --config "
            "configs/tiny.yaml --policy.trainer.max_steps 3"
        ),
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="a round config; several are deep-merged in order (later wins)",
    )
    parser.add_argument(
        "--stage",
        metavar="STAGE",
        help="run one stage: policy or ppm (default: both, in that order)",
    )
    parser.add_argument(
        "--ckpt_path",
        metavar="PATH",
        help="passed to each stage: 'last' resumes from its last checkpoint",
    )
    parser.add_argument(
        "--launch",
        default="subprocess",
        metavar="HOW",
        help="subprocess (default: each stage its own process) or inprocess",
    )
    parser.add_argument(
        "--print_config", action="store_true", help="print the resolved round config and exit"
    )
    for option in stage_options:  # open-ended: LightningCLI checks them, stage by stage
        parser.add_argument(
            option, type=_yaml_value, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    if variables:
        group = parser.add_argument_group(
            "round variables (--KEY VALUE sets one; their values in the config files)"
        )
        for key, value in variables.items():
            group.add_argument(
                f"--{key}",
                metavar="VALUE",
                type=_yaml_value,
                default=argparse.SUPPRESS,
                help="null" if value is None else str(value).replace("%", "%%"),
            )
    return parser


def _dotted(prefix: str, values: dict, given: frozenset[str]) -> dict[str, Any]:
    """The nested values of the `given` dotted options under `prefix`, by dotted key."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and f"--{prefix}.{key}" not in given:
            out.update(_dotted(f"{prefix}.{key}", value, given))
        else:
            out[f"{prefix}.{key}"] = value
    return out


def _parse_round_argv(
    argv: list[str],
    subcommand: str = "fit",
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """argv -> (config paths, dotted overrides, runner options)."""
    from jsonargparse import ArgumentError

    paths = _config_paths(argv)
    merged: dict = {}
    for path in paths:
        merged = _deep_merge(merged, read_round_file(path))
    variables = {k: v for k, v in merged.items() if k not in ROUND_STAGES}
    # a stage's settings are open-ended: the options this command line names are the parser's
    stage_options = frozenset(
        a.split("=", 1)[0]
        for a in argv
        if a.startswith(tuple(f"--{stage}." for stage in ROUND_STAGES))
    )
    parser = _runner_parser(subcommand, variables, stage_options)
    try:
        parsed = parser.parse_args(argv).as_dict()
    except ArgumentError as err:
        raise _round_argument_error(err, parser, merged, paths) from None
    overrides = {k: parsed[k] for k in variables if k in parsed}
    for stage in ROUND_STAGES:
        overrides.update(_dotted(stage, parsed.get(stage) or {}, stage_options))
    options = {k: parsed[k] for k in _RUNNER_OPTIONS}
    options["help"] = parsed["help"]
    options["help_text"] = parser.format_help()
    if options["stage"] not in (None, *ROUND_STAGES):
        raise RoundConfigError(f"--stage {options['stage']!r}; allowed: {', '.join(ROUND_STAGES)}")
    return options.pop("config"), overrides, options


def _round_argument_error(
    err: Exception, parser, merged: dict, paths: list[str]
) -> RoundConfigError:
    """The parser's refusal as one line; an unknown `--KEY` names the closest known one."""
    from rstar_pl.cli import argument_error_line

    match = re.match(r"unrecognized arguments: (?P<args>.*)$", str(err), re.S)
    if match:
        first = match["args"].split()[0]
        if not first.startswith("--"):
            return RoundConfigError(
                f"unexpected argument {first!r}; overrides look like --policy.trainer.max_steps=3"
            )
        return _no_such_key(first[2:].split("=", 1)[0], merged, paths)
    return RoundConfigError(argument_error_line(err, parser))


# ---------------------------------------------------------------- entry points


def main(subcommand: str, argv: list[str]) -> int:
    """Run `subcommand` (fit, validate, test, predict) with LightningCLI arguments `argv`."""
    paths = _config_paths(argv)
    if not paths and any(a in ("-h", "--help") for a in argv):
        print(_runner_parser(subcommand, {}).format_help(), end="")
        return 0
    if (
        paths
        and all(Path(p).is_file() for p in paths)
        and any(is_round_config(read_round_file(p)) for p in paths)
    ):
        import yaml

        paths, overrides, options = _parse_round_argv(argv, subcommand)
        if options["help"]:
            print(options["help_text"], end="")
            return 0
        config = load_round_config(paths, overrides)
        if options["print_config"]:
            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        stages = (options["stage"],) if options["stage"] else ROUND_STAGES
        run_round(
            config,
            subcommand=subcommand,
            stages=stages,
            ckpt_path=options["ckpt_path"],
            launch=options["launch"],
        )
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
