"""`python -m rstar_pl evolve --config CONFIG`: the rounds of self-evolution as one resumable command.

A round, in the paper's sense, is: generate MCTS trees with the previous
round's models, extract training data, train the policy from the base model,
then the PPM from the new policy. `evolve` runs the rounds of its config with
the project's own commands and writes everything under `runs/<name>/`:

    problems/                 train.jsonl, heldout.jsonl (synthetic domain only)
    base/                     the tiny base model (when `tiny_model` is set)
    round<k>/
      generate.yaml           the generation config, as `rstar-pl generate` reads it
      trees/                  tree shards (`rstar-pl generate`, resumable)
      sft.jsonl pairs.jsonl difficulty.jsonl (and the extraction report)   (`rstar-pl extract`)
      config/                 the fit stage configs; policy/ and ppm/ the exports;
      logs/ checkpoints/      TensorBoard logs and Lightning checkpoints (`rstar-pl fit`)
      heldout/ eval/          held-out trees and pairs; greedy / vote / MCTS results
      report.md               problems solved by difficulty, record counts, last
                              training metrics, held-out accuracies
    summary.md summary.json   one row per round
    evolve_state.json         the finished stages and their settings

Stages of round k, in order: `generate`, `extract`, `policy`, `ppm` and
`evaluate` (when the config has `evaluate`); `report.md` is rewritten after
each round's last stage. What each stage uses:

- generate: the round's `search` config file (e.g. `configs/search/round2.yaml`),
  then `search_overrides` (every round), then the round's own overrides (a
  backend or scorer of another kind than the file's takes only the arguments
  the overrides give it), then
  what `evolve` sets: `out_dir`, `seed`, the problems (`problems` or the
  synthetic training split), and from round 2 on the generator: the policy
  exported by round k-1 (`backend.args.model`; a scripted backend is left as it
  is) and, when the config annotates with the PPM (`search.annotation: ppm`,
  rounds 3-4), round k-1's PPM as the scorer. Round 1 generates with the
  config's own backend, the bootstrap teacher.
- extract: `rstar-pl extract` with the `extract` options.
- policy, ppm: the round's `fit` config (`configs/round<k>.yaml`, a valid
  `rstar-pl fit` config on its own) with `run_dir` and `data_dir` set to the
  round folder, `base_model`, and `fit_overrides` merged over it; each stage
  runs as `rstar-pl fit` would run it, resuming from its last checkpoint.
- evaluate: on the held-out problems (`evaluate.problems`, or the synthetic
  held-out split), greedy decoding, majority vote and PPM-guided MCTS at the
  same number of trajectories (`harness.compare`), and the PPM's pairwise
  accuracy on pairs extracted from terminal-guided trees that the round's
  policy grows on the held-out problems (never used for training).

Running the same command again continues from the first unfinished stage;
a finished stage whose settings changed is refused with the key that changed
(`rstar_pl/evolution/ledger.py`). `--until round1.policy` stops after a stage.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.compare import CompareSettings
from rstar_pl.data.records import read_records
from rstar_pl.errors import UserError
from rstar_pl.evolution.ledger import Ledger, LedgerError
from rstar_pl.files import write_atomic, write_json, write_yaml

__all__ = [
    "Evaluate",
    "EvolveConfig",
    "EvolveError",
    "Round",
    "RunPaths",
    "WordProblems",
    "evolve",
    "fit_config",
    "generate_values",
    "heldout_generate_values",
    "main",
    "parse_config",
    "stage_names",
]

log = logging.getLogger("rstar_pl.evolve")

ROUND_STAGES = ("generate", "extract", "policy", "ppm", "evaluate")
_PPM_SCORER = "rstar_pl.backends.ppm:PPMScorer.from_path"
_MODEL_BACKENDS = {
    "hf": "rstar_pl.backends.hf:HFBackend",
    "vllm": "rstar_pl.backends.vllm:VLLMBackend",
}
#: settings that change no result (where a stage runs, how it shows progress)
_FREE_GENERATE_KEYS = ("batch_size", "shard", "num_shards")


class EvolveError(UserError):
    """An evolve config that cannot run."""


@dataclass
class WordProblems:
    """The synthetic word-problem domain (`rstar_pl.data.wordproblems`)."""

    train: int = 300
    """Problems of the training pool (every round generates over them)."""
    heldout: int = 60
    """Problems of the held-out split (never trained on)."""
    seed: int = 0
    """Seed of the training pool (the held-out split has its own fixed seed)."""


@dataclass
class Round:
    """One round: which generation and training configs it starts from."""

    search: str
    """`rstar-pl generate` config file of the round (configs/search/round<k>.yaml)."""
    fit: str
    """Round training config (configs/round<k>.yaml)."""
    search_overrides: dict[str, Any] = field(default_factory=dict)
    """Generation settings of this round only, merged over `search` and the global overrides."""
    fit_overrides: dict[str, Any] = field(default_factory=dict)
    """Training settings of this round only, merged over `fit` and the global overrides."""


@dataclass
class Evaluate:
    """Held-out evaluation after each round."""

    problems: str | None = None
    """rStar-format problem file; default: the synthetic held-out split."""
    limit: int | None = None
    """Evaluate the first N problems only."""
    pairs: bool = True
    """Also grow terminal-guided trees on the held-out problems with the round's policy and
    measure the PPM's pairwise accuracy on their pairs."""
    compare: CompareSettings = field(default_factory=CompareSettings)


@dataclass
class EvolveConfig:
    """Settings of one self-evolution run."""

    name: str = "evolve"
    """Run name: everything goes to runs_dir/name."""
    runs_dir: str = "runs"
    seed: int = 0
    """Run seed: trees, training and evaluation derive theirs from it."""
    base_model: str = "Qwen/Qwen2.5-Math-7B"
    """The base model every round's policy is trained from (hub id or folder)."""
    tiny_model: dict[str, Any] | None = None
    """Build a tiny random model instead (`rstar_pl.tiny.build_tiny_model` arguments) in
    runs_dir/name/base and train from it."""
    wordproblems: WordProblems | None = None
    """Generate over the synthetic domain (and evaluate on its held-out split)."""
    problems: dict[str, Any] | None = None
    """Problems for every round (`problems:` of a generate config), instead of each search
    config's own."""
    search_overrides: dict[str, Any] = field(default_factory=dict)
    """Generation settings merged over every round's search config."""
    fit_overrides: dict[str, Any] = field(default_factory=dict)
    """Training settings merged over every round's fit config (e.g. a CPU trainer)."""
    extract: dict[str, Any] = field(default_factory=dict)
    """`rstar-pl extract` options: min_margin, min_edit, sft_per_problem, pairs_per_side."""
    evaluate: Evaluate | None = None
    rounds: list[Round] = field(default_factory=list)
    launch: Literal["subprocess", "inprocess"] = "subprocess"
    """Run generation and training as child processes (frees their memory) or in this one."""
    threads: int | None = None
    """Threads of every stage's torch (OMP_NUM_THREADS); default: torch's own choice. A tiny
    model on a shared CPU runs many times faster with 1 than with one per core."""

    def __post_init__(self) -> None:
        if not self.rounds:
            raise EvolveError("evolve: the config has no rounds")
        if self.problems is not None and self.wordproblems is not None:
            raise EvolveError("evolve: give `problems` or `wordproblems`, not both")


# ---------------------------------------------------------------- paths and stage settings


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its files (see the module docstring)."""

    run: Path

    def round(self, k: int) -> Path:
        return self.run / f"round{k}"

    @property
    def problems(self) -> Path:
        return self.run / "problems"

    @property
    def base(self) -> Path:
        return self.run / "base"


def stage_names(config: EvolveConfig) -> list[str]:
    """Every stage of the run, in order."""
    names = ["setup"]
    for k in range(1, len(config.rounds) + 1):
        names += [f"round{k}.{s}" for s in ROUND_STAGES if s != "evaluate" or config.evaluate]
    return names


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(*[OmegaConf.create(p or {}) for p in parts])
    return OmegaConf.to_container(merged, resolve=False)


def _resolve(path: str) -> str:
    """A config path as given, else relative to the checkout (configs ship there)."""
    if Path(path).is_file() or Path(path).is_absolute():
        return path
    checkout = Path(__file__).resolve().parents[1] / path
    return str(checkout) if checkout.is_file() else path


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"evolve: config file {path} does not exist")
    return yaml.safe_load(p.read_text(encoding="utf-8")) or {}


def _base_model(config: EvolveConfig, paths: RunPaths) -> str:
    return str(paths.base) if config.tiny_model is not None else config.base_model


def _train_problems(config: EvolveConfig, paths: RunPaths) -> dict[str, Any] | None:
    if config.wordproblems is not None:
        return {"source": str(paths.problems / "train.jsonl")}
    return config.problems


def _levels(config: EvolveConfig, paths: RunPaths) -> dict[str, Any]:
    """problem id -> difficulty level, for the problems that have one (the synthetic domain)."""
    from rstar_pl.data.problems import ProblemsConfig, load_problems

    levels: dict[str, Any] = {}
    for path in (paths.problems / "train.jsonl", paths.problems / "heldout.jsonl"):
        if config.wordproblems is not None and path.is_file():
            for problem in load_problems(ProblemsConfig(source=str(path))).problems:
                levels[problem.id] = problem.meta["level"]
    return levels


def _heldout_file(config: EvolveConfig, paths: RunPaths) -> str | None:
    if config.evaluate is not None and config.evaluate.problems:
        return config.evaluate.problems
    if config.wordproblems is not None:
        return str(paths.problems / "heldout.jsonl")
    return None


def generate_values(config: EvolveConfig, paths: RunPaths, k: int) -> dict[str, Any]:
    """The generation config of round k (see the module docstring)."""
    spec = config.rounds[k - 1]
    values = _read_yaml(_resolve(spec.search))
    for layer in (config.search_overrides, spec.search_overrides):
        for part in ("backend", "scorer"):  # another kind takes only the arguments given for it
            kind = (layer.get(part) or {}).get("kind")
            if kind is not None and kind != (values.get(part) or {}).get("kind"):
                values[part] = {"kind": kind}
        values = _merge(values, layer)
    values["out_dir"] = str(paths.round(k) / "trees")
    values["seed"] = config.seed
    problems = _train_problems(config, paths)
    if problems is not None:
        # the run's problems replace the search file's; what the overrides say of them
        # (a `limit`, field names) still applies
        given = [
            layer.get("problems") or {}
            for layer in (config.search_overrides, spec.search_overrides)
        ]
        values["problems"] = _merge(_merge(problems, given[0]), given[1])
    if k > 1:
        backend = values.setdefault("backend", {})
        if backend.get("kind", "scripted") != "scripted":
            backend.setdefault("args", {})["model"] = str(paths.round(k - 1) / "policy")
        if (values.get("search") or {}).get("annotation") == "ppm":
            scorer = values.get("scorer") or {}
            values["scorer"] = {
                "kind": scorer.get("kind") or _PPM_SCORER,
                "args": {**(scorer.get("args") or {}), "path": str(paths.round(k - 1) / "ppm")},
            }
    return values


def _fit_overrides(config: EvolveConfig, paths: RunPaths, k: int) -> dict[str, Any]:
    spec = config.rounds[k - 1]
    folder = paths.round(k)
    overrides = _merge(
        config.fit_overrides,
        spec.fit_overrides,
        {"run_dir": str(folder), "data_dir": str(folder), "base_model": _base_model(config, paths)},
    )
    overrides.pop("tiny_model", None)  # evolve builds the base model itself
    return overrides


def _dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: a mapping as the dotted overrides of a round config."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fit_config(config: EvolveConfig, paths: RunPaths, k: int) -> dict[str, Any]:
    """The resolved round training config of round k (both stages)."""
    from rstar_pl.train import load_round_config

    spec = config.rounds[k - 1]
    resolved = load_round_config([_resolve(spec.fit)], _dotted(_fit_overrides(config, paths, k)))
    resolved.pop("tiny_model", None)
    return resolved


def _stage_fit_settings(section: dict[str, Any]) -> dict[str, Any]:
    """A stage config without what changes no result."""
    import copy

    section = copy.deepcopy(section)
    section.get("trainer", {}).pop("enable_progress_bar", None)
    section.get("data", {}).get("init_args", {}).pop("num_workers", None)
    return section


def heldout_generate_values(config: EvolveConfig, paths: RunPaths, k: int) -> dict[str, Any]:
    """Terminal-guided trees of round k's own policy on the held-out problems (for pairs)."""
    compare = config.evaluate.compare
    values = generate_values(config, paths, k)
    folder = paths.round(k) / "heldout"
    values["out_dir"] = str(folder / "trees")
    values["problems"] = {"source": _heldout_file(config, paths), "limit": config.evaluate.limit}
    values["schedule"] = [compare.trajectories]
    search = values.setdefault("search", {})
    search.update(annotation="terminal", few_shot=False)
    args = {"model": str(paths.round(k) / "policy")}
    if compare.backend == "hf":
        args.update(dtype="float32", batch_size=compare.batch_size)
    values["backend"] = {"kind": _MODEL_BACKENDS[compare.backend], "args": args}
    values["scorer"] = {"kind": None}
    return values


def _settings(config: EvolveConfig, paths: RunPaths, stage: str) -> dict[str, Any]:
    """What a stage's outputs depend on (compared on resume)."""
    if stage == "setup":
        return {
            "base_model": config.base_model,
            "tiny_model": config.tiny_model,
            "wordproblems": asdict(config.wordproblems) if config.wordproblems else None,
        }
    name, part = stage.split(".")
    k = int(name[len("round") :])
    if part == "generate":
        values = generate_values(config, paths, k)
        return {key: v for key, v in values.items() if key not in _FREE_GENERATE_KEYS}
    if part == "extract":
        return dict(config.extract)
    if part in ("policy", "ppm"):
        return _stage_fit_settings(fit_config(config, paths, k)[part])
    if part == "evaluate":
        return {
            "evaluate": asdict(config.evaluate),
            "problems": _heldout_file(config, paths),
            "pairs": heldout_generate_values(config, paths, k) if config.evaluate.pairs else None,
        }
    return {}


# ---------------------------------------------------------------- running the stages


def _say(text: str) -> None:
    print(f"[evolve] {text}", flush=True)


def _command(args: list[str], launch: str) -> None:
    """Run `python -m rstar_pl ARGS` (printed first), as a child process or in this one."""
    _say(f"$ python -m rstar_pl {shlex.join(args)}")
    if launch == "inprocess":
        from rstar_pl.cli import main as cli_main

        if cli_main(args) != 0:
            raise RuntimeError(f"rstar-pl {args[0]} failed")
        return
    if subprocess.run([sys.executable, "-m", "rstar_pl", *args]).returncode != 0:
        raise RuntimeError(f"rstar-pl {args[0]} failed: {shlex.join(args)}")


def _setup(config: EvolveConfig, paths: RunPaths) -> None:
    if config.wordproblems is not None:
        from rstar_pl.data.wordproblems import wordproblem_splits

        spec = config.wordproblems
        train, held = wordproblem_splits(
            paths.problems, train=spec.train, heldout=spec.heldout, seed=spec.seed
        )
        _say(
            f"word problems: {spec.train} for training in {train}, {spec.heldout} held out in {held}"
        )
    if config.tiny_model is not None and not (paths.base / "config.json").is_file():
        from rstar_pl.tiny import build_tiny_model

        if paths.base.exists():  # an interrupted build leaves nothing usable
            import shutil

            shutil.rmtree(paths.base)
        build_tiny_model(paths.base, seed=config.seed, **config.tiny_model)
        _say(f"tiny base model in {paths.base}")


def _generate(values: dict[str, Any], path: Path, launch: str) -> None:
    write_yaml(path, values)
    _command(["generate", "--config", str(path)], launch)


def _extract(config: EvolveConfig, trees: Path, out: Path, launch: str) -> None:
    args = ["extract", "--trees", str(trees), "--out", str(out)]
    for key, value in config.extract.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    _command(args, launch)


def _count(path: Path) -> int:
    return len(read_records(path)) if path.is_file() else 0


def _fit(config: EvolveConfig, paths: RunPaths, k: int, stage: str) -> None:
    from rstar_pl.train import run_round

    records = paths.round(k) / ("sft.jsonl" if stage == "policy" else "pairs.jsonl")
    if not _count(records):
        what = (
            "correct trajectory"
            if stage == "policy"
            else "problem with both correct and wrong answers"
        )
        raise EvolveError(
            f"round {k}: {records} is empty (the trees hold no {what}), so the {stage} has "
            "nothing to train on; give the round more problems or rollouts (search_overrides), "
            "or a stronger generator"
        )
    resolved = fit_config(config, paths, k)
    spec = config.rounds[k - 1]
    overrides = paths.round(k) / "config" / "evolve_overrides.yaml"
    write_yaml(overrides, _fit_overrides(config, paths, k))
    # what runs is the resolved stage config that run_round writes beside the overrides
    _say(
        f"$ python -m rstar_pl fit --config {spec.fit} --config {overrides} --stage {stage} "
        "--ckpt_path last"
    )
    run_round(resolved, stages=(stage,), ckpt_path="last", launch=config.launch)


def _evaluate(config: EvolveConfig, paths: RunPaths, k: int) -> None:
    from harness.compare import compare_methods, pair_accuracy

    folder = paths.round(k)
    heldout = _heldout_file(config, paths)
    if heldout is None:
        raise EvolveError("evolve: `evaluate` needs evaluate.problems or `wordproblems`")
    settings = config.evaluate.compare
    _say(
        f"held-out evaluation of {folder / 'policy'} (+ {folder / 'ppm'}) on {heldout}: greedy, "
        f"majority vote over {settings.trajectories}, PPM-guided MCTS with "
        f"{settings.trajectories} rollouts"
    )
    results: dict[str, Any] = {"problems": heldout, "trajectories": settings.trajectories}
    started = time.perf_counter()
    results["methods"] = compare_methods(
        str(folder / "policy"),
        str(folder / "ppm"),
        heldout,
        str(folder / "eval"),
        settings,
        limit=config.evaluate.limit,
    )
    if config.evaluate.pairs:
        values = heldout_generate_values(config, paths, k)
        _generate(values, folder / "heldout" / "generate.yaml", config.launch)
        _extract(config, folder / "heldout" / "trees", folder / "heldout", config.launch)
        from rstar_pl.backends.ppm import PPMScorer

        scorer = PPMScorer.from_path(folder / "ppm", batch_size=settings.batch_size)
        results["ppm_pairs"] = pair_accuracy(scorer, folder / "heldout" / "pairs.jsonl")
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(folder / "eval" / "results.json", results)


def _run_stage(config: EvolveConfig, paths: RunPaths, stage: str) -> None:
    if stage == "setup":
        _setup(config, paths)
        return
    name, part = stage.split(".")
    k = int(name[len("round") :])
    folder = paths.round(k)
    if part == "generate":
        _generate(generate_values(config, paths, k), folder / "generate.yaml", config.launch)
    elif part == "extract":
        _extract(config, folder / "trees", folder, config.launch)
    elif part in ("policy", "ppm"):
        _fit(config, paths, k, part)
    elif part == "evaluate":
        _evaluate(config, paths, k)


def _use_threads(threads: int) -> None:
    """Every stage's torch, in this process and in the child processes, uses `threads`."""
    import os

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def evolve(
    config: EvolveConfig,
    *,
    until: str | None = None,
    dumped: str | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """Run (or continue) every stage; return the run folder.

    Raises:
        LedgerError: a finished stage's settings changed.
    """
    from rstar_pl.evolution.report import write_round_report, write_summary

    paths = RunPaths(Path(config.runs_dir) / config.name)
    if config.threads is not None:
        _use_threads(config.threads)
    order = stage_names(config)
    if until is not None and until not in order:
        raise EvolveError(f"--until {until!r}: no such stage; stages: {', '.join(order)}")
    ledger = Ledger(paths.run / "evolve_state.json")
    last = "evaluate" if config.evaluate else "ppm"  # a round's report follows its last stage
    # Refuse before doing anything when finished work no longer matches the config.
    for stage in order:
        if ledger.done(stage):
            ledger.check(stage, _settings(config, paths, stage))
    paths.run.mkdir(parents=True, exist_ok=True)
    if dumped is not None:
        write_atomic(paths.run / "evolve_config.yaml", dumped)
    for stage in order:
        if ledger.done(stage):
            _say(f"{stage}: finished before, skipped")
        else:
            _say(stage)
            ledger.forget_from(stage, order)
            started = time.perf_counter()
            _run_stage(config, paths, stage)
            ledger.finish(
                stage,
                _settings(config, paths, stage),
                seconds=round(time.perf_counter() - started, 1),
            )
        if on_stage is not None:
            on_stage(stage)
        if stage.startswith("round") and stage.endswith(f".{last}"):
            k = int(stage.split(".")[0][len("round") :])
            report = write_round_report(paths.round(k), k, levels=_levels(config, paths))
            _say(f"round {k} report: {report}")
        if stage == until:
            _say(f"stopped after {stage} (--until)")
            return paths.run
    table = write_summary(paths.run, len(config.rounds), levels=_levels(config, paths))
    print(table, flush=True)
    return paths.run


# ---------------------------------------------------------------- command line


def _parser(prog: str = "rstar-pl evolve"):
    from rstar_pl.cli import config_parser

    parser = config_parser(
        EvolveConfig,
        prog=prog,
        config_file=True,
        description="Self-evolution rounds (generate, extract, train, "
        "evaluate) as one resumable command.",
    )
    parser.add_argument("--until", default=None, help="stop after this stage (e.g. round1.policy)")
    return parser


def parse_config(
    argv: list[str],
    prog: str = "rstar-pl evolve",
) -> tuple[EvolveConfig, str, str | None]:
    """(config, its YAML dump, --until) from `--config FILE` and `--key value` overrides."""
    parser = _parser(prog)
    try:
        namespace = parser.parse_args(argv)
        until = namespace.pop("until")
        dumped = parser.dump(namespace)
        built = parser.instantiate(namespace)
    except argparse.ArgumentError as err:
        raise EvolveError(f"evolve config ({' '.join(argv)}): {str(err).splitlines()[0]}") from None
    values = {k: v for k, v in vars(built).items() if k not in ("config", "until")}
    return EvolveConfig(**values), dumped, until


def main(argv: list[str], prog: str = "rstar-pl evolve") -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config, dumped, until = parse_config(argv, prog)
    try:
        run = evolve(config, until=until, dumped=dumped)
    except LedgerError as err:
        print(f"rstar-pl evolve: {err}", file=sys.stderr)
        return 2
    _say(f"done: {run}")
    return 0
