"""`python -m rstar_pl generate --config FILE.yaml`: MCTS trees for training data.

Loads problems, builds the policy backend, the optional PPM scorer and the
sandbox named in the config, and runs MCTS over batches of problems in
lock-step, appending each finished tree to this shard's tree file at once
(`rstar_pl/data/trees.py`). The rollout `schedule` gives one budget per attempt:
`[16]` is one tree of 16 rollouts per problem; round 4's `[16, 64, 128]`
grows a new tree (a new seed) with 64 rollouts for every problem the first
tree left unsolved, then 128 for those still unsolved.

Restarting the same command resumes: finished (problem, attempt) trees in
`out_dir` are skipped, and a tree depends only on the run seed, the problem and
the attempt, so the finished set is the same as an uninterrupted run's. The
config used is saved as `out_dir/generate_config.yaml` when the first tree is
written (a run that fails before that leaves nothing behind); resuming with a
config that would change the trees is refused, naming the setting that differs
(out_dir, batch_size, shards, problems.limit and the placement of Ray replicas
may change).

One run per shard of an `out_dir` at a time: a run holds the lock
`out_dir/.generate-SSSSS-of-NNNNN.lock` (`rstar_pl.files.lock`) while it writes,
and a second run of the same shard, or of a shard layout whose problems overlap
(another `num_shards`), is refused with one line naming the running process.
Shards of one layout take disjoint problems and run side by side.

Backends plug in by import path: `backend.kind: scripted` or
`backend.kind: package.module:Class` (or `package.module:Class.factory`) with
`backend.args` as keyword arguments (same for `scorer`; `scorer.kind: null`
for none), e.g. `rstar_pl.backends.vllm:VLLMBackend` with `{model: PATH}` and
`rstar_pl.backends.ppm:PPMScorer.from_path` or
`rstar_pl.backends.vllm:VLLMScorer` with `{path: PATH}`. `kind: ray` spreads
either over Ray replicas (`rstar_pl.backends.ray`): `args.replica` is the
`{kind, args}` each replica holds, and `num_replicas`, `cpus_per_replica`,
`gpus_per_replica`, `max_restarts`, `address`, `ray_init` and
`placement_strategy` place them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstar_pl.cli import argument_error_line
from rstar_pl.data.problems import Problem, ProblemsConfig, load_problems
from rstar_pl.data.trees import TreeWriter, finished_trees, shard_path
from rstar_pl.errors import UserError
from rstar_pl.files import (
    OutputInUseError,
    check_free,
    exclusive_output,
    is_locked,
    write_atomic,
)
from rstar_pl.search.expand import SearchEnv
from rstar_pl.search.mcts import MCTSConfig, run_mcts
from rstar_pl.search.tree import Tree

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


class ConfigError(UserError):
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
    from rstar_pl.cli import config_parser

    return config_parser(
        GenerateConfig,
        prog="rstar-pl generate",
        config_file=True,
        description="Generate MCTS trees (JSONL shards) for a problem set.",
    )


def parse_config(argv: list[str]) -> tuple[GenerateConfig, str]:
    """(config, its YAML dump) from `--config FILE` and `--key value` overrides."""
    parser = _parser()
    try:
        namespace = parser.parse_args(argv)
        dumped = parser.dump(namespace)
        built = parser.instantiate(namespace)
    except argparse.ArgumentError as err:
        where = " ".join(argv)
        raise ConfigError(
            f"generate config ({where}): {argument_error_line(err, parser)}"
        ) from None
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


def _check_args(factory, what: str, args: dict[str, Any], *leading: Any) -> None:
    """Check that `factory(*leading, **args)` takes these arguments, so that an
    unknown one is a config error naming it rather than a TypeError."""
    name = getattr(factory, "__qualname__", repr(factory))
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let it check
        return
    try:
        signature.bind(*leading, **args)
    except TypeError as err:
        named = [
            p
            for p, v in signature.parameters.items()
            if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)
        ][len(leading) :]
        unknown = [k for k in args if k not in named]
        if unknown and not any(v.kind is v.VAR_KEYWORD for v in signature.parameters.values()):
            raise ConfigError(
                f"{what}.args: {name} takes no {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(named) or 'no arguments'}"
            ) from None
        raise ConfigError(f"{what}.args: {name}: {err}") from None


def _construct(factory, what: str, args: dict[str, Any], *leading: Any):
    """`factory(*leading, **args)`, after `_check_args`."""
    _check_args(factory, what, args, *leading)
    return factory(*leading, **args)


def _component(config: ComponentConfig, what: str, problems: list[Problem]) -> tuple[Any, tuple]:
    """(callable, leading arguments) that build the backend or scorer `config` names."""
    if config.kind == "scripted":
        from rstar_pl.backends import scripted

        cls = scripted.ScriptedBackend if what == "backend" else scripted.ScriptedScorer
        return cls, (scripted.scripts_from_problems(problems),)
    if not config.kind:
        raise ConfigError(f"{what}.kind is empty; use 'scripted' or 'package.module:Class'")
    return _import(config.kind, what), ()


def _ray(config: ComponentConfig, what: str, problems: list[Problem]):
    """`kind: ray`: Ray replicas of the component in `args.replica` (`{kind, args}`).
    Args that are not Ray settings (`ray.pool_settings()`) are given to every replica,
    over `replica.args`, so that a caller that sets e.g. `backend.args.model` reaches them."""
    from functools import partial

    from rstar_pl.backends.ray import RayBackend, RayScorer, pool_settings

    args = dict(config.args)
    spec = args.pop("replica", None)
    if not isinstance(spec, dict) or not spec.get("kind") or set(spec) - {"kind", "args"}:
        raise ConfigError(
            f"{what}.kind ray needs {what}.args.replica: {{kind: ..., args: {{...}}}}, the "
            f"{what} each replica holds; got {spec!r}"
        )
    if spec["kind"] == "ray":
        raise ConfigError(
            f"{what}.args.replica.kind cannot be ray itself; name the {what} to replicate"
        )
    pool = {k: args.pop(k) for k in list(args) if k in pool_settings()}
    replica = ComponentConfig(spec["kind"], {**(spec.get("args") or {}), **args})
    factory, leading = _component(replica, what, problems)
    _check_args(factory, f"{what}.args.replica", replica.args, *leading)
    gpus = pool.get("gpus_per_replica", 0)
    tp = replica.args.get("tensor_parallel_size", 1)
    if isinstance(gpus, int | float) and gpus > 1 and tp != gpus:
        raise ConfigError(
            f"{what}.args.gpus_per_replica is {gpus} but replica.args.tensor_parallel_size is "
            f"{tp}; a tensor-parallel replica's engine spans its placement group: set both"
        )
    cls = RayBackend if what == "backend" else RayScorer
    return _construct(cls, what, pool, partial(factory, *leading, **replica.args))


def build_backend(config: ComponentConfig, problems: list[Problem]):
    if config.kind == "ray":
        return _ray(config, "backend", problems)
    factory, leading = _component(config, "backend", problems)
    return _construct(factory, "backend", config.args, *leading)


def build_scorer(config: ComponentConfig, problems: list[Problem]):
    if config.kind is None:
        return None
    if config.kind == "ray":
        return _ray(config, "scorer", problems)
    factory, leading = _component(config, "scorer", problems)
    return _construct(factory, "scorer", config.args, *leading)


_FREE_KEYS = ("out_dir", "batch_size", "shard", "num_shards", "config")


def _essential(text: str) -> tuple[dict, list]:
    """(settings that shape the trees, rollouts per attempt) of a dumped config."""
    import yaml

    values = yaml.safe_load(text) or {}
    # settings that do not change any tree: where it runs, how it is batched
    # (trees are independent of batch composition), how many problems
    values = {k: v for k, v in values.items() if k not in _FREE_KEYS}
    if isinstance(values.get("problems"), dict):
        values["problems"] = {k: v for k, v in values["problems"].items() if k != "limit"}
    for name in ("backend", "scorer"):  # how many Ray replicas, and where: no tree changes
        component = values.get(name)
        if isinstance(component, dict) and component.get("kind") == "ray":
            from rstar_pl.backends.ray import pool_settings

            args = component.get("args") if isinstance(component.get("args"), dict) else {}
            component["args"] = {k: v for k, v in args.items() if k not in pool_settings()}
    search = values.get("search") if isinstance(values.get("search"), dict) else {}
    schedule = values.pop("schedule", None) or [search.get("rollouts")]
    values["search"] = {k: v for k, v in search.items() if k != "rollouts"}
    return values, list(schedule)


def _differences(old: Any, new: Any, key: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, old, new) of every setting that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [*old, *(k for k in new if k not in old)]:
            yield from _differences(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))
    elif old != new:
        yield key, old, new


def _check_config(out_dir: Path, dumped: str, done: dict) -> None:
    """Refuse to add trees of another config to the trees in `out_dir`, naming what differs."""
    path = out_dir / CONFIG_NAME
    if not done or not path.is_file():
        return  # no trees yet: a config left without trees binds nothing
    old, old_schedule = _essential(path.read_text(encoding="utf-8"))
    new, new_schedule = _essential(dumped)
    found = [f"{k} is {n!r} here but {o!r} in {path}" for k, o, n in _differences(old, new)]
    # a schedule may grow or shrink (more attempts on unsolved problems), but
    # an attempt's rollout budget, like every other search setting, is fixed
    found += [
        f"schedule[{i}] (attempt {i}'s rollouts) is {n!r} here but {o!r} in {path}"
        for i, (o, n) in enumerate(zip(old_schedule, new_schedule))
        if o != n
    ]
    if found:
        shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
        raise ConfigError(
            f"{out_dir} holds trees generated with a different config: {shown}; use a new "
            "out_dir or the same settings to resume"
        )


_LOCK_NAME = re.compile(r"^\.generate-(\d{5})-of-(\d{5})\.lock$")


def _check_other_layouts(out_dir: Path, config: GenerateConfig) -> None:
    """Refuse while a run with another shard layout (whose problems overlap ours) writes."""
    if not out_dir.is_dir():
        return
    for path in sorted(out_dir.glob(".generate-*.lock")):
        match = _LOCK_NAME.match(path.name)
        if match is None or int(match[2]) == config.num_shards:
            continue  # shards of our own layout are disjoint; our own shard is our lock's job
        holder = is_locked(path)
        if holder is not None:
            raise OutputInUseError(
                f"out_dir {out_dir} is being written by another run ({holder}) with "
                f"num_shards={int(match[2])}, whose problems overlap these; wait for it to "
                "finish or choose another out_dir"
            )


def _preflight(
    out_dir: Path, config: GenerateConfig, dumped: str | None, *, holding: bool = False
) -> dict:
    """Refuse early (before any model loads) what the locked run would refuse too;
    returns the finished trees. `holding`: this process holds its shard's lock."""
    _check_other_layouts(out_dir, config)
    if not holding:
        check_free(out_dir, _lock_name(config), what="out_dir")
    done = finished_trees(out_dir)
    if dumped is not None:
        _check_config(out_dir, dumped, done)
    return done


def _lock_name(config: GenerateConfig) -> str:
    return f"generate-{config.shard:05d}-of-{config.num_shards:05d}"


@contextmanager
def _locked(out_dir: Path, config: GenerateConfig, dumped: str | None) -> Iterator[dict]:
    """Hold this shard's lock of `out_dir`; yields the finished trees, read under it."""
    with exclusive_output(out_dir, _lock_name(config), what="out_dir"):
        yield _preflight(out_dir, config, dumped, holding=True)


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
    skipped and solved. `env` overrides the backend/scorer/sandbox of the config.
    `dumped` is the config as YAML, saved beside the first tree written."""
    problem_set = load_problems(config.problems)
    problems = [
        p for i, p in enumerate(problem_set.problems) if i % config.num_shards == config.shard
    ]
    out_dir = Path(config.out_dir)
    _preflight(out_dir, config, dumped)  # a busy or mismatched folder costs no model load
    sandbox_cm = None
    if env is None:
        from rstar_pl.sandbox import Sandbox

        backend = build_backend(config.backend, problem_set.problems)
        scorer = build_scorer(config.scorer, problem_set.problems)
        sandbox_cm = Sandbox(**config.sandbox)
        env = SearchEnv(backend=backend, sandbox=sandbox_cm.__enter__(), scorer=scorer)
    try:
        with _locked(out_dir, config, dumped) as done:
            return _run(config, problems, problem_set.skipped, env, done, out_dir, dumped)
    finally:
        if sandbox_cm is not None:
            sandbox_cm.__exit__(None, None, None)


def _run(
    config: GenerateConfig,
    problems: list[Problem],
    skipped: list,
    env: SearchEnv,
    done: dict[tuple[str, int], bool],
    out_dir: Path,
    dumped: str | None,
) -> dict[str, int]:
    """The search loop of `generate`, with `out_dir` locked."""
    from tqdm.auto import tqdm

    schedule = config.rollout_schedule
    counts = {
        "written": 0,
        "solved": 0,
        "problems": len(problems),
        "skipped_problems": len(skipped),
    }
    counts["already_done"] = sum(
        1 for p in problems for k in range(len(schedule)) if (p.id, k) in done
    )
    # A bar on a terminal only (tqdm's disable=None); the per-tree log lines stay for logs.
    # Later attempts' trees are added to the total once the earlier attempts have run.
    bar = tqdm(
        total=len(_pending(problems, done, 0)),
        desc=f"trees (attempt 1/{len(schedule)})",
        unit="tree",
        disable=None,
        dynamic_ncols=True,
    )
    with TreeWriter(shard_path(out_dir, config.shard, config.num_shards)) as writer, bar:

        def finished(tree: Tree) -> None:
            if counts["written"] == 0 and dumped is not None:
                write_atomic(out_dir / CONFIG_NAME, dumped)  # the config of these trees
            writer.write(tree)
            solved = tree.solved()
            done[(tree.problem_id, tree.attempt)] = solved
            counts["written"] += 1
            counts["solved"] += int(solved)
            bar.update(1)
            bar.set_postfix(solved=counts["solved"], refresh=False)
            log.info(
                "wrote tree problem=%s attempt=%d nodes=%d solved=%s",
                tree.problem_id,
                tree.attempt,
                len(tree),
                solved,
            )

        for attempt, rollouts in enumerate(schedule):
            todo = _pending(problems, done, attempt)
            if attempt:
                bar.total += len(todo)
                bar.set_description(f"trees (attempt {attempt + 1}/{len(schedule)})")
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
    return counts


def main(argv: list[str]) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config, dumped = parse_config(argv)
    with logging_redirect_tqdm():  # log lines print above the progress bar, not through it
        counts = generate(config, dumped=dumped)
    print(
        f"generate: {counts['written']} new trees ({counts['solved']} solved), "
        f"{counts['already_done']} already done, {counts['problems']} problems in shard "
        f"{config.shard}/{config.num_shards}, {counts['skipped_problems']} skipped; "
        f"trees in {config.out_dir}"
    )
    return 0
