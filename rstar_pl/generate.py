"""`python -m rstar_pl generate --config FILE.yaml`: MCTS trees for training data.

Loads problems, builds the policy backend, the optional PPM scorer and the
sandbox named in the config, and runs MCTS over batches of problems in
lock-step, appending each finished tree to this shard's tree file at once
(`rstar_pl/treeio.py`). The rollout `schedule` gives one budget per attempt:
`[16]` is one tree of 16 rollouts per problem; round 4's `[16, 64, 128]`
grows a new tree (a new seed) with 64 rollouts for every problem the first
tree left unsolved, then 128 for those still unsolved.

Restarting the same command resumes: finished (problem, attempt) trees in
`out_dir` are skipped, and a tree depends only on the run seed, the problem and
the attempt, so the finished set is the same as an uninterrupted run's. The
config used is saved as `out_dir/generate_config.yaml`; resuming with a
config that would change the trees is refused (out_dir, batch_size, shards and
problems.limit may change).

Backends plug in by import path: `backend.kind: scripted` or
`backend.kind: package.module:Class` (or `package.module:Class.factory`) with
`backend.args` as keyword arguments (same for `scorer`; `scorer.kind: null`
for none), e.g. `rstar_pl.backends.vllm:VLLMBackend` with `{model: PATH}` and
`rstar_pl.backends.ppm:PPMScorer.from_path` with `{path: PATH}`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstar_pl.problems import Problem, ProblemsConfig, load_problems
from rstar_pl.search.expand import SearchEnv
from rstar_pl.search.mcts import MCTSConfig, run_mcts
from rstar_pl.search.tree import Tree
from rstar_pl.treeio import TreeWriter, finished_trees, shard_path

__all__ = [
    "ComponentConfig",
    "ConfigError",
    "GenerateConfig",
    "generate",
    "main",
    "parse_config",
    "parse_mapping",
]

log = logging.getLogger("rstar_pl.generate")

CONFIG_NAME = "generate_config.yaml"


class ConfigError(ValueError):
    """A generation config that cannot be used."""


@dataclass
class ComponentConfig:
    """A backend or scorer: `scripted`, or `package.module:Class` built with `args`."""

    kind: str | None = "scripted"
    """'scripted', an import path 'package.module:Class', or null (scorer only)."""
    args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the constructor."""


@dataclass
class GenerateConfig:
    """Settings of one tree-generation run."""

    out_dir: str = "runs/trees"
    """Folder of the tree shards and the saved config."""
    seed: int = 0
    """Run seed; each tree's seed derives from it, the problem id and the attempt."""
    batch_size: int = 32
    """Trees searched together in lock-step (one backend call per level)."""
    schedule: list[int] = field(default_factory=list)
    """Rollouts per attempt; empty means [search.rollouts]. Attempt k > 0 runs only
    on problems that attempts 0..k-1 left unsolved (round 4: [16, 64, 128])."""
    shard: int = 0
    """This process's shard: problems whose position modulo num_shards is shard."""
    num_shards: int = 1
    """How many processes split the problems (each writes its own shard file)."""
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    search: MCTSConfig = field(default_factory=MCTSConfig)
    backend: ComponentConfig = field(default_factory=ComponentConfig)
    scorer: ComponentConfig = field(default_factory=lambda: ComponentConfig(kind=None))
    sandbox: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for `rstar_pl.sandbox.Sandbox` (timeout, memory_mb, ...)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.shard < self.num_shards:
            raise ConfigError(
                f"shard must be in [0, num_shards={self.num_shards}), got {self.shard}"
            )
        if any(r < 1 for r in self.schedule):
            raise ConfigError(f"schedule entries must be >= 1, got {self.schedule}")

    @property
    def rollout_schedule(self) -> list[int]:
        return list(self.schedule) or [self.search.rollouts]


def _parser():
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    # the attribute docstrings of the config dataclasses become the --help text
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(
        prog="rstar-pl generate",
        description="Generate MCTS trees (JSONL shards) for a problem set.",
        exit_on_error=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config file")
    parser.add_class_arguments(GenerateConfig, as_group=False)
    return parser


def parse_config(argv: list[str]) -> tuple[GenerateConfig, str]:
    """(config, its YAML dump) from `--config FILE` and `--key value` overrides."""
    parser = _parser()
    try:
        namespace = parser.parse_args(argv)
        dumped = parser.dump(namespace)
        built = parser.instantiate(namespace)
    except argparse.ArgumentError as err:
        where = " ".join(argv)
        raise ConfigError(f"generate config ({where}): {str(err).splitlines()[0]}") from None
    values = {k: v for k, v in vars(built).items() if k != "config"}
    return GenerateConfig(**values), dumped


def parse_mapping(values: dict[str, Any], where: str) -> tuple[GenerateConfig, str]:
    """(config, its YAML dump) from a mapping of the config's fields, i.e. what a
    config file holds (`where` names it in errors)."""
    parser = _parser()
    try:
        namespace = parser.parse_object(values)
        dumped = parser.dump(namespace)
        built = parser.instantiate(namespace)
    except argparse.ArgumentError as err:
        raise ConfigError(f"generate config ({where}): {str(err).splitlines()[0]}") from None
    return GenerateConfig(**{k: v for k, v in vars(built).items() if k != "config"}), dumped


def _import(kind: str, what: str):
    """`package.module:Name` or `package.module:Class.factory` -> the callable."""
    module_name, _, name = kind.partition(":")
    if not name:
        raise ConfigError(
            f"{what}.kind must be 'scripted' or an import path 'package.module:Class', got {kind!r}"
        )
    try:
        target = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{what}.kind {kind!r} cannot be imported: {err}") from None
    return target


def build_backend(config: ComponentConfig, problems: list[Problem]):
    if config.kind == "scripted":
        from rstar_pl.backends.scripted import ScriptedBackend, scripts_from_problems

        return ScriptedBackend(scripts_from_problems(problems), **config.args)
    if not config.kind:
        raise ConfigError("backend.kind is empty; use 'scripted' or 'package.module:Class'")
    return _import(config.kind, "backend")(**config.args)


def build_scorer(config: ComponentConfig, problems: list[Problem]):
    if config.kind is None:
        return None
    if config.kind == "scripted":
        from rstar_pl.backends.scripted import ScriptedScorer, scripts_from_problems

        return ScriptedScorer(scripts_from_problems(problems), **config.args)
    return _import(config.kind, "scorer")(**config.args)


_FREE_KEYS = ("out_dir", "batch_size", "shard", "num_shards", "config")


def _save_config(out_dir: Path, dumped: str, config: GenerateConfig) -> None:
    """Write the config beside the trees; refuse to mix trees of different configs."""
    path = out_dir / CONFIG_NAME

    def essential(text: str) -> tuple[dict, list]:
        import yaml

        values = yaml.safe_load(text) or {}
        # settings that do not change any tree: where it runs, how it is batched
        # (trees are independent of batch composition), how many problems
        values = {k: v for k, v in values.items() if k not in _FREE_KEYS}
        if isinstance(values.get("problems"), dict):
            values["problems"] = {k: v for k, v in values["problems"].items() if k != "limit"}
        search = values.get("search") if isinstance(values.get("search"), dict) else {}
        schedule = values.pop("schedule", None) or [search.get("rollouts")]
        values["search"] = {k: v for k, v in search.items() if k != "rollouts"}
        return values, list(schedule)

    if path.exists():
        old, old_schedule = essential(path.read_text(encoding="utf-8"))
        new, new_schedule = essential(dumped)
        common = min(len(old_schedule), len(new_schedule))
        # a schedule may grow or shrink (more attempts on unsolved problems), but
        # an attempt's rollout budget, like every other search setting, is fixed
        if old != new or old_schedule[:common] != new_schedule[:common]:
            raise ConfigError(
                f"{out_dir} holds trees generated with a different config ({path}); "
                "use a new out_dir or the same config to resume"
            )
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".config-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dumped)
    os.replace(tmp, path)


def _pending(
    problems: list[Problem], done: dict[tuple[str, int], bool], attempt: int
) -> list[Problem]:
    """Problems that still need a tree at `attempt`: none yet, and every
    earlier attempt exists and left the problem unsolved."""
    out = []
    for p in problems:
        if (p.id, attempt) in done:
            continue
        earlier = [done.get((p.id, k)) for k in range(attempt)]
        if all(solved is False for solved in earlier):
            out.append(p)
    return out


def generate(
    config: GenerateConfig, *, env: SearchEnv | None = None, dumped: str | None = None
) -> dict[str, int]:
    """Run generation (resuming in `out_dir`); return counts of trees written,
    skipped and solved. `env` overrides the backend/scorer/sandbox of the config."""
    problem_set = load_problems(config.problems)
    problems = [
        p for i, p in enumerate(problem_set.problems) if i % config.num_shards == config.shard
    ]
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dumped is not None:
        _save_config(out_dir, dumped, config)
    done = finished_trees(out_dir)
    schedule = config.rollout_schedule
    counts = {
        "written": 0,
        "solved": 0,
        "problems": len(problems),
        "skipped_problems": len(problem_set.skipped),
    }
    counts["already_done"] = sum(
        1 for p in problems for k in range(len(schedule)) if (p.id, k) in done
    )

    sandbox_cm = None
    if env is None:
        from rstar_pl.sandbox import Sandbox

        sandbox_cm = Sandbox(**config.sandbox)
        env = SearchEnv(
            backend=build_backend(config.backend, problem_set.problems),
            sandbox=sandbox_cm.__enter__(),
            scorer=build_scorer(config.scorer, problem_set.problems),
        )
    try:
        with TreeWriter(shard_path(out_dir, config.shard, config.num_shards)) as writer:

            def finished(tree: Tree) -> None:
                writer.write(tree)
                solved = tree.solved()
                done[(tree.problem_id, tree.attempt)] = solved
                counts["written"] += 1
                counts["solved"] += int(solved)
                log.info(
                    "wrote tree problem=%s attempt=%d nodes=%d solved=%s",
                    tree.problem_id,
                    tree.attempt,
                    len(tree),
                    solved,
                )

            for attempt, rollouts in enumerate(schedule):
                todo = _pending(problems, done, attempt)
                for start in range(0, len(todo), config.batch_size):
                    run_mcts(
                        todo[start : start + config.batch_size],
                        env,
                        config.search,
                        seed=config.seed,
                        attempt=attempt,
                        rollouts=rollouts,
                        on_tree_done=finished,
                    )
    finally:
        if sandbox_cm is not None:
            sandbox_cm.__exit__(None, None, None)
    return counts


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config, dumped = parse_config(argv)
    counts = generate(config, dumped=dumped)
    print(
        f"generate: {counts['written']} new trees ({counts['solved']} solved), "
        f"{counts['already_done']} already done, {counts['problems']} problems in shard "
        f"{config.shard}/{config.num_shards}, {counts['skipped_problems']} skipped; "
        f"trees in {config.out_dir}"
    )
    return 0
