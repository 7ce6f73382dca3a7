"""`python -m rstar_pl fit` on a round config with the tiny override: both trainings,
both exports, TensorBoard logs, saved configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rstar_pl.train import RoundConfigError, load_round_config, main

ROOT = Path(__file__).resolve().parents[1]
ROUND2 = str(ROOT / "configs" / "round2.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")


def _tags(log_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    tags = acc.Tags()
    return set(tags["scalars"]) | set(tags.get("tensors", []))


def test_round_trains_policy_then_ppm_from_it(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "--config", ROUND2, "--config", TINY,
        f"--run_dir={run}", f"--tiny_model={tiny_model_dir}", f"--data_dir={ROOT / 'configs/tiny_data'}",
        "--policy.trainer.max_steps=3", "--ppm.trainer.max_steps=2", "--launch", "inprocess",
    ]
    assert main("fit", argv) == 0

    # Policy export: an ordinary HF folder; PPM export: backbone + value head.
    from rstar_pl.backends.ppm import PPMScorer
    from rstar_pl.export import load_policy

    model, tokenizer = load_policy(run / "policy")
    assert "<end_of_step>" in tokenizer.get_vocab()
    values = PPMScorer.from_path(run / "ppm").score(["<|user|>:\nq\n<|assistant|>: <code>\nx = 1\n<end_of_step>"])
    assert len(values) == 1 and -1 <= values[0] <= 1

    # The PPM stage started from this round's exported policy.
    import yaml

    ppm_stage = yaml.safe_load((run / "config" / "ppm.yaml").read_text())
    assert ppm_stage["model"]["init_args"]["model"] == str(run / "policy")

    # TensorBoard: losses, learning rate, gradient norm, pair accuracy, sample generations.
    policy_logs = run / "logs" / "policy" / "version_0"
    ppm_logs = run / "logs" / "ppm" / "version_0"
    assert {"train/loss", "val/loss", "lr-AdamW", "train/grad_norm", "samples/text_summary"} <= _tags(policy_logs)
    assert {"train/loss", "train/pair_accuracy", "train/margin", "val/pair_accuracy"} <= _tags(ppm_logs)
    # LightningCLI saved each stage's full config next to its logs.
    saved = yaml.safe_load((policy_logs / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 3 and saved["model"]["init_args"]["lr"] == 1e-3
    assert (run / "checkpoints" / "policy" / "last.ckpt").is_file()


def test_print_config_resolves_the_round(tmp_path, capsys):
    import yaml

    assert main("fit", ["--config", ROUND2, "--config", TINY, f"--run_dir={tmp_path}", "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["ppm"]["model"]["init_args"]["model"] == f"{tmp_path}/policy"
    assert config["policy"]["trainer"]["accelerator"] == "cpu"
    assert config["policy"]["trainer"]["strategy"] == "auto"
    # The round's values not overridden by tiny.yaml stay.
    assert config["policy"]["model"]["init_args"]["schedule"] == "linear"
    assert config["policy"]["data"]["init_args"]["train_files"] == ["configs/tiny_data/sft.jsonl"]


def test_round_errors_are_one_line(tmp_path):
    with pytest.raises(RoundConfigError, match="--stage 'critic'; allowed: policy, ppm"):
        main("fit", ["--config", ROUND2, "--stage", "critic"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_dir: ${missing}\npolicy: {}\n")
    with pytest.raises(RoundConfigError, match="cannot resolve"):
        load_round_config([str(bad)])
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_round_config([str(tmp_path / "nope.yaml")])
