"""Replicas of a policy backend or a PPM scorer as Ray actors.

`RayBackend` is a `PolicyBackend` and `RayScorer` a `Scorer` over
`num_replicas` Ray actors, each holding its own engine, built in the actor by
a factory (vLLM, transformers, or the scripted backend for tests). Search
still makes one call per depth level; each call sends every replica its slice
of the level in **one** remote call, and the replicas run side by side.

Routing. A policy call's prompts are routed by their `affinity` key (search
passes the tree's seed): every node of a tree goes to the same replica, whose
prefix cache then holds that tree's path. A key seen for the first time goes
to the live replica with the fewest keys in the current call (ties: the lower
index). Without keys, and for a scorer, a call is cut into contiguous slices,
one per live replica (search lists a level's texts tree by tree).

Seeds. Each prompt carries its own seed (`per_prompt_seeds`), and a replica
whose engine takes one seed per call (transformers: `per_prompt_seeds =
False`) runs its prompts one at a time, each under its own seed. So what a
prompt gets does not depend on which replica serves it or on how many there
are: exactly so for the scripted and transformers backends; for vLLM up to
its batch-position numerics (see `vllm.py` and the README).

Failures. A replica whose process dies (a crash, a lost node, `ray.kill`) is
restarted by Ray up to `max_restarts` times, and the slice it was serving is
run again on the new instance (actor tasks are retried: `max_task_retries`);
a replica that is dead for good is dropped, its trees are routed to the live
ones and its slice is sent again. A slice has no side effect (results depend
only on prompts and seeds), so running one twice is harmless. The trees
themselves live in the process that runs the search and are written there
(`rstar_pl.data.trees`, one shard per process, the unit of resume): a lost replica loses
no finished tree and writes none twice. When no replica is left the call
raises.

Placement. A replica of `gpus_per_replica` <= 1 asks Ray for that many GPUs.
A tensor-parallel replica (`gpus_per_replica` = k > 1) gets its own placement
group of k bundles `{"GPU": 1, "CPU": 1}` (strategy `STRICT_PACK`: one node),
and the actor runs in it with `placement_group_capture_child_tasks`, so that
vLLM, given `tensor_parallel_size: k` and `distributed_executor_backend:
ray`, places its k workers in those bundles (as vLLM's and Ray's docs describe
for tensor-parallel engines under Ray).

Ray is started with `ray.init(address=address, **ray_init)` unless it is
running already (`address: auto` joins a cluster started with `ray start`);
`close()` kills the actors and, when this object started Ray, shuts it down.
Only this file imports Ray.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from rstar_pl.backends.base import Completion, per_prompt
from rstar_pl.errors import UserError

__all__ = ["RayBackend", "RayScorer", "ReplicaPool", "pool_settings", "route_by_key"]

log = logging.getLogger(__name__)


class _Server:
    """The actor: holds one engine built by `factory()` and serves its slices."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.target = factory()
        self.calls = 0

    def generate(self, prompts: list[str], seeds: list[int | None], kwargs: dict) -> list:
        self.calls += 1
        if getattr(self.target, "per_prompt_seeds", True):
            return self.target.generate(prompts, seed=seeds, **kwargs)
        # one seed per call: one call per prompt keeps each prompt's samples its own
        return [self.target.generate([p], seed=s, **kwargs)[0] for p, s in zip(prompts, seeds)]

    def score(self, texts: list[str]) -> list[float]:
        self.calls += 1
        return list(self.target.score(texts))

    def call(self, method: str, *args: Any) -> Any:
        """`target.method(*args)`, e.g. `cache_stats` of a vLLM engine."""
        return getattr(self.target, method)(*args)

    def info(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        group = ray.util.get_current_placement_group()
        return {
            "pid": os.getpid(),
            "node": context.get_node_id(),
            "restarted": context.was_current_actor_reconstructed,
            "calls": self.calls,
            "placement_group": None if group is None else group.bundle_specs,
        }


class ReplicaPool:
    """`num_replicas` `_Server` actors and the failure handling of remote calls.

    Args:
        factory: builds the engine inside each actor (pickled to it).
        num_replicas: how many actors.
        cpus_per_replica: Ray CPUs each actor reserves.
        gpus_per_replica: GPUs each replica's engine uses; above 1, a placement
            group of that many `{"GPU": 1, "CPU": 1}` bundles per replica.
        max_restarts: times Ray restarts a dead replica before it is dropped.
        address: the Ray cluster (None: start a local one; "auto": join).
        ray_init: more keyword arguments for `ray.init`.
        placement_strategy: of a tensor-parallel replica's bundles.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        num_replicas: int = 2,
        cpus_per_replica: float = 1.0,
        gpus_per_replica: float = 0.0,
        max_restarts: int = 1,
        address: str | None = None,
        ray_init: dict[str, Any] | None = None,
        placement_strategy: str = "STRICT_PACK",
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if num_replicas < 1:
            raise UserError(f"num_replicas must be >= 1, got {num_replicas}")
        if max_restarts < -1:
            raise UserError(f"max_restarts must be >= -1 (-1: without limit), got {max_restarts}")
        if gpus_per_replica > 1 and gpus_per_replica != int(gpus_per_replica):
            raise UserError(
                f"gpus_per_replica above 1 must be a whole number of GPUs, got {gpus_per_replica}"
            )
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            ray.init(address=address, **(ray_init or {}))
        _warn_if_unplaceable(num_replicas, cpus_per_replica, gpus_per_replica)
        self.groups: list[Any] = []
        options: dict[str, Any] = {
            "num_cpus": cpus_per_replica,
            "max_restarts": max_restarts,
            "max_task_retries": max_restarts,
        }
        remote = ray.remote(_Server)
        self.actors: list[Any | None] = []
        for _ in range(num_replicas):
            if gpus_per_replica > 1:
                group = ray.util.placement_group(
                    [{"GPU": 1, "CPU": 1}] * int(gpus_per_replica), strategy=placement_strategy
                )
                self.groups.append(group)
                strategy = PlacementGroupSchedulingStrategy(
                    group, placement_group_capture_child_tasks=True
                )
                # the engine's workers take the GPUs of the bundles; the actor takes none
                actor_options = {
                    **options,
                    "num_cpus": min(cpus_per_replica, 1.0),
                    "num_gpus": 0,
                    "scheduling_strategy": strategy,
                }
            else:
                actor_options = {**options, "num_gpus": gpus_per_replica}
            self.actors.append(remote.options(**actor_options).remote(factory))
        self.dropped: list[tuple[int, str]] = []

    @property
    def alive(self) -> list[int]:
        """Indices of the replicas not dropped."""
        return [i for i, actor in enumerate(self.actors) if actor is not None]

    def run(
        self,
        method: str,
        assign: Callable[[list[int]], dict[int, list[int]]],
        payload: Callable[[list[int]], tuple],
        count: int,
    ) -> list[Any]:
        """Results of items 0..count-1: `assign(items)` maps live replicas to
        the items each serves; each replica gets `method(*payload(its items))`
        in one remote call, returning one result per item. Items of a replica
        that is dead for good are assigned again among the live ones."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        results: list[Any] = [None] * count
        todo = list(range(count))
        unavailable = 0
        while todo:
            if not self.alive:
                last = self.dropped[-1][1] if self.dropped else "none started"
                raise RuntimeError(
                    f"all {len(self.actors)} Ray replicas are dead (last: {last}); "
                    "nothing can serve this call"
                )
            plan = {r: items for r, items in assign(todo).items() if items}
            futures = {
                getattr(self.actors[r], method).remote(*payload(items)): (r, items)
                for r, items in plan.items()
            }
            todo = []
            for future, (replica, items) in futures.items():
                try:
                    values = ray.get(future)
                except ActorUnavailableError:  # restarting or unreachable for a moment
                    unavailable += 1
                    if unavailable > 3 * len(self.actors):
                        self._drop(replica, "unavailable again and again")
                    time.sleep(1.0)
                    todo.extend(items)
                    continue
                except RayActorError as err:  # dead for good: no restarts left
                    self._drop(replica, _last_line(err))
                    todo.extend(items)
                    continue
                if len(values) != len(items):
                    raise ValueError(
                        f"Ray replica {replica} returned {len(values)} results for "
                        f"{len(items)} items"
                    )
                for i, value in zip(items, values):
                    results[i] = value
            todo.sort()
        return results

    def each(self, method: str, *args: Any) -> list[Any]:
        """`method(*args)` on every live replica (None for dropped ones)."""
        import ray

        futures = [None if a is None else getattr(a, method).remote(*args) for a in self.actors]
        return [None if f is None else ray.get(f) for f in futures]

    def _drop(self, replica: int, why: str) -> None:
        if self.actors[replica] is not None:
            self.actors[replica] = None
            self.dropped.append((replica, why))

    def close(self) -> None:
        """Kill the actors and their placement groups; stop Ray if this pool started it."""
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        for group in self.groups:
            ray.util.remove_placement_group(group)
        self.actors = [None] * len(self.actors)
        if self.owns_ray:
            ray.shutdown()


def pool_settings() -> tuple[str, ...]:
    """The keyword arguments of `ReplicaPool` (what a config's `kind: ray` args may set)."""
    return tuple(inspect.signature(ReplicaPool).parameters)[1:]


def _warn_if_unplaceable(replicas: int, cpus: float, gpus: float) -> None:
    """Ray waits, silently, for resources a cluster does not have: say so up front."""
    import ray

    total = ray.cluster_resources()
    need = {"CPU": replicas * (min(cpus, 1.0) if gpus > 1 else cpus), "GPU": replicas * gpus}
    short = [
        f"{need[k]:g} {k} (the cluster has {total.get(k, 0):g})"
        for k in need
        if need[k] > total.get(k, 0)
    ]
    if short:
        log.warning(
            "%d Ray replicas of %g CPU and %g GPU need %s: the replicas that do not fit wait "
            "until the cluster grows; lower num_replicas, cpus_per_replica or gpus_per_replica",
            replicas,
            cpus,
            gpus,
            " and ".join(short),
        )


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def route_by_key(
    keys: Sequence[Hashable], items: Sequence[int], home: dict[Hashable, int], alive: Sequence[int]
) -> dict[int, list[int]]:
    """Items by replica, `keys[k]` being the key of `items[k]`: a key's items go
    to its replica (`home`, updated here); a key that is new, or whose replica
    is not in `alive`, goes to the live replica with the fewest keys in this
    call (ties: the lower index), taking keys in their order of first appearance."""
    load = dict.fromkeys(alive, 0)
    distinct = list(dict.fromkeys(keys))
    for key in distinct:  # keys with a live home count first
        if home.get(key) in load:
            load[home[key]] += 1
    for key in distinct:
        if home.get(key) not in load:
            replica = min(alive, key=lambda r: (load[r], r))
            home[key] = replica
            load[replica] += 1
    plan: dict[int, list[int]] = {r: [] for r in alive}
    for key, item in zip(keys, items):
        plan[home[key]].append(item)
    return plan


def _contiguous(items: list[int], replicas: list[int]) -> dict[int, list[int]]:
    """`items` cut into len(replicas) contiguous slices of near-equal length."""
    size, extra = divmod(len(items), len(replicas))
    out, start = {}, 0
    for k, replica in enumerate(replicas):
        stop = start + size + (k < extra)
        out[replica] = items[start:stop]
        start = stop
    return out


class RayBackend:
    """A `PolicyBackend` over Ray replicas of another backend (see the module docstring).

    Attributes:
        per_prompt_seeds: True: every prompt brings its own seed.

    Args:
        factory: builds one replica's backend inside its actor, e.g.
            `functools.partial(VLLMBackend, "runs/round2/policy")`; configs name
            it as `backend.kind: ray` with `args.replica: {kind, args}`.
        **pool: `ReplicaPool`'s settings (num_replicas, cpus_per_replica,
            gpus_per_replica, max_restarts, address, ray_init, placement_strategy).
    """

    per_prompt_seeds = True

    def __init__(self, factory: Callable[[], Any], **pool: Any) -> None:
        self.factory = factory
        self.pool = ReplicaPool(factory, **pool)
        self.home: dict[Hashable, int] = {}

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        stop: Sequence[str] = (),
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        affinity: Sequence[Hashable] | None = None,
    ) -> list[list[Completion]]:
        prompts = list(prompts)
        if not prompts:
            return []
        seeds = per_prompt(seed, len(prompts), "seed")
        keys = None if affinity is None else per_prompt(list(affinity), len(prompts), "affinity")
        kwargs = dict(
            n=n, stop=list(stop), max_tokens=max_tokens, temperature=temperature, top_p=top_p
        )

        def assign(items: list[int]) -> dict[int, list[int]]:
            if keys is None:
                return _contiguous(items, self.pool.alive)
            return route_by_key([keys[i] for i in items], items, self.home, self.pool.alive)

        def payload(items: list[int]) -> tuple:
            return [prompts[i] for i in items], [seeds[i] for i in items], kwargs

        return self.pool.run("generate", assign, payload, len(prompts))

    def each(self, method: str, *args: Any) -> list[Any]:
        """`method(*args)` of every live replica's backend, e.g. `each("cache_stats")`."""
        return self.pool.each("call", method, *args)

    def close(self) -> None:
        self.pool.close()


class RayScorer:
    """A `Scorer` over Ray replicas of another scorer; a call is cut into
    contiguous slices, one per live replica (see the module docstring).

    Args:
        factory: builds one replica's scorer inside its actor, e.g.
            `functools.partial(VLLMScorer, "runs/round2/ppm")`; configs name it
            as `scorer.kind: ray` with `args.replica: {kind, args}`.
        **pool: `ReplicaPool`'s settings.
    """

    def __init__(self, factory: Callable[[], Any], **pool: Any) -> None:
        self.factory = factory
        self.pool = ReplicaPool(factory, **pool)

    def score(self, texts: Sequence[str]) -> list[float]:
        texts = list(texts)
        if not texts:
            return []
        return self.pool.run(
            "score",
            lambda items: _contiguous(items, self.pool.alive),
            lambda items: ([texts[i] for i in items],),
            len(texts),
        )

    def each(self, method: str, *args: Any) -> list[Any]:
        """`method(*args)` of every live replica's scorer."""
        return self.pool.each("call", method, *args)

    def close(self) -> None:
        self.pool.close()
