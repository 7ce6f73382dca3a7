"""`backend: ray` / `scorer: ray`: replicas as Ray actors on a local `ray.init()`.

One small local Ray runtime serves the whole module (4 logical CPUs and 2
logical GPUs, so that a tensor-parallel placement group can be asked for on a
machine without GPUs) and is shut down at the end, its processes with it.
The replicas hold the scripted backend (exact, model-free) or the transformers
backend on the tiny model. Trees are compared as their canonical JSON lines.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from rstar_pl.backends.ray import RayBackend, RayScorer, route_by_key  # noqa: E402
from rstar_pl.backends.scripted import (  # noqa: E402
    ScriptedBackend,
    ScriptedScorer,
    scripts_from_problems,
)
from rstar_pl.data.problems import load_problems  # noqa: E402
from rstar_pl.data.trees import load_trees  # noqa: E402
from rstar_pl.generate import ConfigError, GenerateConfig, generate, parse_config  # noqa: E402
from rstar_pl.search import recompute_statistics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "search" / "scripted.yaml"
# 4 problems, one attempt of 8 rollouts; a generous sandbox limit, so that a loaded
# machine never turns a step into a timeout (which would change a tree).
ARGS = [
    "--config",
    str(CONFIG),
    "--problems.limit",
    "4",
    "--schedule",
    "[8]",
    "--sandbox",
    '{"timeout": 120}',
]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # the helper classes below travel to the actors by value (this module is not
    # importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=4,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 2**20,
    )
    yield
    import psutil

    ray.shutdown()
    left = [
        p.name()
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert not [n for n in left if "raylet" in n or "gcs_server" in n], left


def _records(folder: Path) -> list[str]:
    lines = []
    for path in sorted(folder.glob("trees-*.jsonl")):
        lines += [json.dumps(json.loads(x), sort_keys=True) for x in path.read_text().splitlines()]
    return sorted(lines)


def _config(out: Path, *extra: str) -> tuple[GenerateConfig, str]:
    return parse_config([*ARGS, "--out_dir", str(out), *extra])


@pytest.fixture(scope="module")
def one_engine(tmp_path_factory) -> Path:
    """The reference: the plain scripted backend in this process."""
    out = tmp_path_factory.mktemp("one") / "trees"
    config, dumped = _config(out)
    generate(config, dumped=dumped)
    return out


def _problems():
    config, _ = parse_config(ARGS)
    return load_problems(config.problems).problems


class RecordingBackend(ScriptedBackend):
    """The scripted backend, keeping the prompts it was asked to continue."""

    def __init__(self, scripts, **kwargs):
        super().__init__(scripts, **kwargs)
        self.seen: list[str] = []

    def generate(self, prompts, **kwargs):
        self.seen.extend(prompts)
        return super().generate(prompts, **kwargs)

    def prompts_seen(self) -> list[str]:
        return list(self.seen)


class DyingBackend(ScriptedBackend):
    """The scripted backend, whose process exits in its `die_at`-th call; one
    replica of all dies, once (the marker file it creates spares the others and
    its own restarted self)."""

    def __init__(self, scripts, *, marker: str, die_at: int, **kwargs):
        super().__init__(scripts, **kwargs)
        self.marker, self.die_at, self.count = marker, die_at, 0

    def generate(self, prompts, **kwargs):
        self.count += 1
        if self.count == self.die_at:
            try:  # the first replica to get here creates the marker (atomically) and dies
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # the replica's process dies in the middle of a call
        return super().generate(prompts, **kwargs)


def _scripted_args(config: GenerateConfig) -> dict:
    return dict(config.backend.args)


def _scripted_replica() -> dict:
    """`replica:` for `backend.kind: ray`: the scripted backend of the config."""
    config, _ = parse_config(ARGS)
    return {"kind": "scripted", "args": _scripted_args(config)}


# --- routing, by hand -------------------------------------------------------------------------


def test_route_by_key_keeps_a_key_on_its_replica_and_balances_new_keys():
    home: dict = {}
    # keys a b a c on replicas 0, 1: a -> 0 (both empty), b -> 1, c -> 0 (tie: 1 key each)
    plan = route_by_key(["a", "b", "a", "c"], [0, 1, 2, 3], home, [0, 1])
    assert plan == {0: [0, 2, 3], 1: [1]} and home == {"a": 0, "b": 1, "c": 0}
    # next level: c and a stay on 0, b on 1; d is new: loads 0:2, 1:1 -> d to 1
    plan = route_by_key(["c", "d", "b", "a"], [0, 1, 2, 3], home, [0, 1])
    assert plan == {0: [0, 3], 1: [1, 2]}
    # replica 0 dropped: its keys a, c move to 1, which alone is left
    plan = route_by_key(["a", "c", "d"], [5, 6, 7], home, [1])
    assert plan == {1: [5, 6, 7]} and home["a"] == home["c"] == 1


# --- the same trees as one engine ---------------------------------------------------------------


def test_two_scripted_replicas_write_the_trees_of_one_engine(one_engine, tmp_path):
    out = tmp_path / "trees"
    replica = json.dumps(_scripted_replica())
    config, dumped = _config(
        out,
        "--backend.kind",
        "ray",
        "--backend.args",
        f'{{"num_replicas": 2, "replica": {replica}}}',
    )
    generate(config, dumped=dumped)
    assert _records(out) == _records(one_engine)
    for tree in load_trees([out]):
        visits, value_sum = recompute_statistics(tree)
        assert visits == tree.visits and value_sum == pytest.approx(tree.value_sum)


def test_every_node_of_a_tree_goes_to_one_replica_and_both_replicas_work(one_engine, tmp_path):
    from rstar_pl.sandbox import Sandbox
    from rstar_pl.search.expand import SearchEnv

    config, dumped = _config(tmp_path / "trees")
    scripts = scripts_from_problems(_problems())
    backend = RayBackend(
        functools.partial(RecordingBackend, scripts, **_scripted_args(config)), num_replicas=2
    )
    try:
        with Sandbox(**config.sandbox) as sandbox:
            generate(config, env=SearchEnv(backend=backend, sandbox=sandbox), dumped=dumped)
        seen = backend.each("prompts_seen")
    finally:
        backend.close()
    assert _records(tmp_path / "trees") == _records(one_engine)
    trees = load_trees([tmp_path / "trees"])
    served_by = {}
    for tree in trees:
        replicas = {
            r for r, prompts in enumerate(seen) for p in prompts if p.startswith(tree.prompt)
        }
        served_by[tree.problem_id] = replicas
        assert len(replicas) == 1, (tree.problem_id, replicas)
    assert sorted(r for rs in served_by.values() for r in rs) == [0, 0, 1, 1]  # 2 trees each
    # and every prompt a replica saw is a node of one of these trees
    assert all(any(p.startswith(t.prompt) for t in trees) for prompts in seen for p in prompts)


def test_a_run_resumed_with_another_number_of_replicas_completes_the_same_trees(
    one_engine, tmp_path
):
    """Shards stay the unit of resume: a run stopped after 2 of the 4 problems and
    resumed on 1 replica instead of 2 writes the other 2 trees, each tree once."""
    out = tmp_path / "trees"
    replica = _scripted_replica()
    for replicas, limit in ((2, "2"), (1, "4")):
        config, dumped = _config(
            out,
            "--problems.limit",
            limit,
            "--backend.kind",
            "ray",
            "--backend.args",
            json.dumps({"num_replicas": replicas, "replica": replica}),
        )
        counts = generate(config, dumped=dumped)
        assert counts["written"] == 2 and counts["already_done"] == (0 if limit == "2" else 2)
    assert _records(out) == _records(one_engine)


def test_args_beside_the_replica_reach_every_replica(tiny_model_dir, tmp_path):
    """`backend.args.model` (what a caller such as the generation callback sets) is
    given to the replicas, over `replica.args`."""
    from rstar_pl.generate import build_backend

    args = {
        "num_replicas": 1,
        "model": str(tiny_model_dir),
        "replica": {
            "kind": "rstar_pl.backends.hf:HFBackend",
            "args": {"model": "elsewhere", "device": "cpu"},
        },
    }
    config, _ = _config(tmp_path, "--backend.kind", "ray", "--backend.args", json.dumps(args))
    backend = build_backend(config.backend, [])
    try:
        assert backend.factory.keywords == {"model": str(tiny_model_dir), "device": "cpu"}
        assert len(backend.pool.actors) == 1
    finally:
        backend.close()


@pytest.mark.slow
def test_two_transformers_replicas_give_the_trees_of_one(tiny_model_dir, tmp_path):
    """Replicas of the HF backend (one seed per call) run each prompt under its own
    seed, so the trees do not depend on how many replicas share the work."""
    records = []
    for replicas in (1, 2):
        out = tmp_path / f"r{replicas}"
        args = {
            "num_replicas": replicas,
            "replica": {
                "kind": "rstar_pl.backends.hf:HFBackend",
                "args": {"model": str(tiny_model_dir), "device": "cpu"},
            },
        }
        config, dumped = parse_config(
            [
                *ARGS,
                "--out_dir",
                str(out),
                "--problems.limit",
                "2",
                "--search.rollouts",
                "3",
                "--schedule",
                "[3]",
                "--search.n",
                "2",
                "--search.sampling.max_tokens",
                "12",
                "--backend.kind",
                "ray",
                "--backend.args",
                json.dumps(args),
            ]
        )
        generate(config, dumped=dumped)
        records.append(_records(out))
    assert records[0] == records[1] and len(records[0]) == 2


# --- replicas that die ---------------------------------------------------------------------------


def _dying_run(tmp_path: Path, max_restarts: int) -> tuple[Path, RayBackend, list]:
    from rstar_pl.sandbox import Sandbox
    from rstar_pl.search.expand import SearchEnv

    out = tmp_path / "trees"
    config, dumped = _config(out)
    scripts = scripts_from_problems(_problems())
    marker = tmp_path / "died"
    dying = functools.partial(
        DyingBackend, scripts, marker=str(marker), die_at=3, **_scripted_args(config)
    )
    backend = RayBackend(dying, num_replicas=2, max_restarts=max_restarts)
    try:
        with Sandbox(**config.sandbox) as sandbox:
            generate(config, env=SearchEnv(backend=backend, sandbox=sandbox), dumped=dumped)
        info = backend.pool.each("info")
    finally:
        backend.close()
    assert marker.exists(), "a replica should have died during the run"
    return out, backend, info


def test_a_replica_killed_mid_call_is_restarted_and_the_run_completes(one_engine, tmp_path):
    out, backend, info = _dying_run(tmp_path, max_restarts=1)
    assert _records(out) == _records(one_engine)
    assert backend.pool.dropped == []
    # the first replica to reach its 3rd call died and came back; the marker spared the other
    assert [i["restarted"] for i in info].count(True) == 1
    # the tree file holds each tree once
    ids = [(t.problem_id, t.attempt) for t in load_trees([out])]
    assert len(ids) == len(set(ids)) == 4


def test_a_replica_dead_for_good_is_dropped_and_its_trees_move(one_engine, tmp_path):
    out, backend, info = _dying_run(tmp_path, max_restarts=0)
    assert _records(out) == _records(one_engine)
    # the first replica to reach its 3rd call died (the marker stops the other)
    assert len(backend.pool.dropped) == 1
    dead = backend.pool.dropped[0][0]
    assert info[dead] is None and info[1 - dead] is not None
    assert set(backend.home.values()) == {1 - dead}  # every tree now lives on the survivor


def test_all_replicas_dead_is_one_line(tmp_path):
    scripts = scripts_from_problems(_problems())
    dying = functools.partial(DyingBackend, scripts, marker=str(tmp_path / "never"), die_at=1)
    backend = RayBackend(dying, num_replicas=1, max_restarts=0)
    try:
        with pytest.raises(RuntimeError, match=r"all 1 Ray replicas are dead"):
            backend.generate(["x"], n=1, seed=[1], affinity=[1])
    finally:
        backend.close()


# --- the scorer, placement, config ---------------------------------------------------------------


def test_scorer_replicas_score_like_one_scorer():
    problems = _problems()
    scripts = scripts_from_problems(problems)
    from rstar_pl.steps import build_prompt

    texts = [
        build_prompt(p.question) + f"x = {k}\n<end_of_step>" for p in problems for k in range(3)
    ]
    expected = ScriptedScorer(scripts).score(texts)
    scorer = RayScorer(functools.partial(ScriptedScorer, scripts), num_replicas=2)
    try:
        assert scorer.score(texts) == expected
        calls = [i["calls"] for i in scorer.pool.each("info")]
        assert calls == [1, 1]  # one remote call per replica, each with its slice
    finally:
        scorer.close()


def test_ppm_annotated_trees_with_policy_and_scorer_both_on_replicas(tmp_path):
    """`scorer.kind: ray` beside `backend.kind: ray`: the PPM-annotated trees of the
    scripted policy and PPM are those of one engine each."""
    ppm_config = ROOT / "configs" / "search" / "scripted_ppm.yaml"
    common = [
        "--config",
        str(ppm_config),
        "--problems.limit",
        "3",
        "--schedule",
        "[6]",
        "--sandbox",
        '{"timeout": 120}',
    ]
    config, dumped = parse_config([*common, "--out_dir", str(tmp_path / "one")])
    generate(config, dumped=dumped)
    policy = {"num_replicas": 2, "replica": {"kind": "scripted", "args": config.backend.args}}
    scorer = {"num_replicas": 2, "replica": {"kind": "scripted", "args": config.scorer.args}}
    config, dumped = parse_config(
        [
            *common,
            "--out_dir",
            str(tmp_path / "ray"),
            "--backend.kind",
            "ray",
            "--backend.args",
            json.dumps(policy),
            "--scorer.kind",
            "ray",
            "--scorer.args",
            json.dumps(scorer),
        ]
    )
    generate(config, dumped=dumped)
    trees = load_trees([tmp_path / "ray"])
    assert len(trees) == 3 and any(p is not None for t in trees for p in t.prior[1:])
    assert _records(tmp_path / "ray") == _records(tmp_path / "one")


def test_a_tensor_parallel_replica_runs_in_its_own_placement_group():
    scripts = scripts_from_problems(_problems())
    backend = RayBackend(
        functools.partial(ScriptedBackend, scripts), num_replicas=1, gpus_per_replica=2
    )
    try:
        (info,) = backend.pool.each("info")
    finally:
        backend.close()
    assert info["placement_group"] == [{"GPU": 1.0, "CPU": 1.0}] * 2


def test_replicas_the_cluster_cannot_hold_are_named_up_front(caplog):
    scripts = scripts_from_problems(_problems())
    with caplog.at_level("WARNING", logger="rstar_pl.backends.ray"):
        backend = RayBackend(
            functools.partial(ScriptedBackend, scripts), num_replicas=3, gpus_per_replica=1
        )
        backend.close()  # the third replica would wait for a GPU for ever
    assert "3 Ray replicas of 1 CPU and 1 GPU need 3 GPU (the cluster has 2)" in caplog.text


def test_ray_config_errors_are_one_line_naming_the_key(tmp_path):
    from rstar_pl.generate import build_backend

    def build(args):
        config, _ = _config(tmp_path, "--backend.kind", "ray", "--backend.args", json.dumps(args))
        return build_backend(config.backend, [])

    with pytest.raises(ConfigError, match=r"backend.kind ray needs backend.args.replica"):
        build({"num_replicas": 2})
    with pytest.raises(ConfigError, match=r"backend.args.replica.args: HFBackend takes no 'modle'"):
        build({"replica": {"kind": "rstar_pl.backends.hf:HFBackend", "args": {"modle": "x"}}})
    with pytest.raises(ConfigError, match=r"gpus_per_replica is 4 but .*tensor_parallel_size is 1"):
        build(
            {
                "gpus_per_replica": 4,
                "replica": {"kind": "rstar_pl.backends.vllm:VLLMBackend", "args": {"model": "m"}},
            }
        )
