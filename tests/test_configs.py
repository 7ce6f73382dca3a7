"""Every YAML in configs/ loads; training configs carry the paper's hyperparameters and
parse against the classes they name; FSDP2 is configured for GPUs (tests/test_fsdp.py
trains with the same setting on CPU).

Rule for which files are training configs: a YAML with a top-level `policy`, `ppm` or
`trainer` key, once the files it names under `config:` are merged in (the round files
hold only what differs from configs/round_base.yaml). Others (search and evaluation
configs, e.g. configs/search/) are only checked to be valid YAML here; their owners test
them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from rstar_pl.train import (
    StageConfigError,
    _lightning_cli,
    _write_yaml,
    load_round_config,
    read_round_file,
)

ROOT = Path(__file__).resolve().parents[1]
ALL_YAML = sorted((ROOT / "configs").rglob("*.yaml"))
TRAINING = [p for p in ALL_YAML if {"policy", "ppm", "trainer"} & set(read_round_file(str(p)))]
ROUNDS = [ROOT / "configs" / f"round{r}.yaml" for r in (1, 2, 3, 4)]


def _global_batch(stage: dict) -> int:
    t, d = stage["trainer"], stage["data"]["init_args"]
    return d["batch_size"] * t["devices"] * t["num_nodes"] * t["accumulate_grad_batches"]


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_loads(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_the_four_rounds_and_the_tiny_override_are_training_configs():
    assert set(ROUNDS) | {ROOT / "configs" / "tiny.yaml"} <= set(TRAINING)


@pytest.mark.parametrize("path", ROUNDS, ids=lambda p: p.name)
def test_round_has_the_paper_hyperparameters(path):
    text = path.read_text()
    assert f"python -m rstar_pl fit --config configs/{path.name}" in text.split("\n\n")[0]
    assert re.search(r"8 GPUs", text)
    config = load_round_config([str(path)])
    policy, ppm = config["policy"], config["ppm"]
    assert policy["model"]["init_args"]["model"] == "Qwen/Qwen2.5-Math-7B"
    assert ppm["model"]["init_args"]["model"] == f"{config['run_dir']}/policy"
    assert policy["trainer"]["max_epochs"] == 2 and ppm["trainer"]["max_epochs"] == 1
    assert policy["data"]["init_args"]["max_length"] == 4096
    assert _global_batch(policy) == 128 and _global_batch(ppm) == 512
    for stage in (policy, ppm):
        assert stage["model"]["init_args"]["lr"] == 7e-6
        assert stage["model"]["init_args"]["schedule"] == "linear"
        # FSDP2 over every GPU; bf16 compute, fp32 master weights and reduce; layer recompute.
        assert stage["trainer"]["strategy"] == {"class_path": "modules.strategy.FSDP2Strategy"}
        assert stage["trainer"]["precision"] == "32-true"
        init = stage["model"]["init_args"]
        assert init["fsdp"] == {"param_dtype": "bfloat16", "reduce_dtype": "float32"}
        assert init["dtype"] == "float32" and init["gradient_checkpointing"] is True


@pytest.mark.parametrize("path", ROUNDS, ids=lambda p: p.name)
def test_round_stages_parse_with_lightning_cli(path, tmp_path, capsys):
    """--print_config validates every key against the classes' signatures (nothing is built)."""
    config = load_round_config([str(path)])
    for stage in ("policy", "ppm"):
        stage_file = tmp_path / f"{stage}.yaml"
        _write_yaml(stage_file, config[stage])
        with pytest.raises(SystemExit) as exit_:
            _lightning_cli("fit", ["--config", str(stage_file), "--print_config"])
        assert exit_.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        # The tokenizer path is linked from the model path.
        assert (
            printed["model"]["init_args"]["model"] == config[stage]["model"]["init_args"]["model"]
        )


def test_a_typo_in_a_stage_config_is_rejected_in_one_line(tmp_path, capsys):
    config = load_round_config([str(ROUNDS[1])])
    config["policy"]["model"]["init_args"]["learning_rate"] = 1e-5
    stage_file = tmp_path / "policy.yaml"
    _write_yaml(stage_file, config["policy"])
    with pytest.raises(
        StageConfigError,
        match=r"^model\.init_args\.learning_rate: "
        r"modules\.PolicyModule takes no such argument",
    ):
        _lightning_cli("fit", ["--config", str(stage_file), "--print_config"])
    assert capsys.readouterr().err == ""  # no usage text


def test_fsdp2_strategy_shards_over_every_process():
    from lightning.pytorch.strategies import ModelParallelStrategy

    from modules.strategy import FSDP2Strategy

    strategy = FSDP2Strategy()
    assert isinstance(strategy, ModelParallelStrategy)
    assert strategy._data_parallel_size == "auto" and strategy._tensor_parallel_size == 1
    assert strategy._save_distributed_checkpoint is True
    with pytest.raises(ValueError, match="tensor_parallel_size is 2; allowed: 1"):
        FSDP2Strategy(tensor_parallel_size=2)


def test_the_fsdp1_strategy_is_refused_with_the_new_class_path():
    from rstar_pl.fsdp import DecoderLayerFSDP

    with pytest.raises(ValueError, match="modules.strategy.FSDP2Strategy"):
        DecoderLayerFSDP(layer_class="transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer")


def test_tiny_override_runs_on_cpu():
    config = load_round_config([str(ROUNDS[1]), str(ROOT / "configs" / "tiny.yaml")])
    for stage in ("policy", "ppm"):
        trainer = config[stage]["trainer"]
        assert trainer["accelerator"] == "cpu" and trainer["strategy"] == "auto"
        assert trainer["precision"] == "32-true" and trainer["max_steps"] <= 10
    assert config["policy"]["model"]["init_args"]["model"] == config["tiny_model"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 FSDP2 on a GPU)")
def test_fsdp_policy_stage_on_gpu(tiny_model_dir, tmp_path):
    from modules.export import load_policy
    from rstar_pl.train import main

    run = tmp_path / "run"
    argv = [
        "--config",
        str(ROUNDS[1]),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--stage",
        "policy",
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={ROOT / 'configs/tiny_data'}",
        "--policy.trainer.accelerator=gpu",
        "--policy.trainer.devices=1",
        "--policy.trainer.strategy={class_path: modules.strategy.FSDP2Strategy}",
        "--policy.trainer.max_steps=2",
        "--launch",
        "inprocess",
    ]
    assert main("fit", argv) == 0
    model, _ = load_policy(run / "policy")
    assert model.config.num_hidden_layers == 4
