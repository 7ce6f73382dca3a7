"""The generation callback: new trees and new training data between two epochs of `fit`.

A tiny policy trains on SFT records of one set of problems (A); after epoch 0
the callback exports it, runs MCTS with the scripted teacher over a second set
(B), extracts, and epoch 1 must train on B's records only. An interrupted
generation resumes without writing any finished tree again.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import yaml

from datamodules import SFTDataModule
from modules import PolicyModule
from modules.generation import GenerateBetweenEpochs
from rstar_pl.backends.scripted import ScriptedBackend
from rstar_pl.data.wordproblems import make_split, write_problems
from rstar_pl.steps import build_prompt


class FailingBackend(ScriptedBackend):
    """The scripted teacher as a backend loaded by import path (it is handed the export
    as `model`, and ignores it), made to crash after `fail_after` calls while armed."""

    armed = False

    def __init__(self, problems: str, *, model: str, fail_after: int = 12, **kwargs) -> None:
        from rstar_pl.backends.scripted import scripts_from_problems
        from rstar_pl.data.problems import ProblemsConfig, load_problems

        problem_set = load_problems(ProblemsConfig(source=problems))
        super().__init__(scripts_from_problems(problem_set.problems), **kwargs)
        self.fail_after = fail_after

    def generate(self, prompts, **kwargs):
        if FailingBackend.armed and self.calls >= self.fail_after:
            raise RuntimeError("killed in the middle of generation")
        return super().generate(prompts, **kwargs)


def _response(problem) -> str:
    return (
        "<code>\n"
        + "\n<end_of_step>\n".join(problem.script)
        + "\n<end_of_code>\n<output>"
        + problem.answer
        + "<end_of_output>\n<answer>The answer is \\boxed{"
        + problem.answer
        + "}.<end_of_answer>"
    )


class RecordPrompts(L.Callback):
    """Decodes the prompts of every training batch, per epoch."""

    def __init__(self) -> None:
        self.seen: dict[int, set[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        tokenizer = trainer.datamodule.tokenizer
        rows = zip(
            batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
        )
        for ids, labels, mask in rows:
            prompt = [i for i, label, real in zip(ids, labels, mask) if label == -100 and real]
            self.seen.setdefault(trainer.current_epoch, set()).add(tokenizer.decode(prompt))


@pytest.fixture()
def problems(tmp_path):
    first, second = make_split(11, 4, prefix="a"), make_split(12, 5, prefix="b")
    sft = tmp_path / "a-sft.jsonl"
    sft.write_text(
        "".join(
            json.dumps(
                {
                    "problem_id": p.index,
                    "question": p.question,
                    "response": _response(p),
                    "mean_q": 1.0,
                    "min_q": 1.0,
                }
            )
            + "\n"
            for p in first
        )
    )
    return first, second, sft, write_problems(tmp_path / "b.jsonl", second)


def _fit(tiny_model_dir, tmp_path, sft, b_file, *, kind="scripted", ckpt_path=None):
    args = {"p_wrong": 0.3, "p_error": 0.1, "seed": 0}
    if kind != "scripted":
        args["problems"] = str(b_file)
    generate = {
        "seed": 0,
        "batch_size": 1,
        "schedule": [4],
        "problems": {"source": str(b_file)},
        "search": {
            "n": 3,
            "max_depth": 8,
            "errors_threshold": 2,
            "sampling": {"temperature": 1.0, "max_tokens": 64},
        },
        "backend": {"kind": kind, "args": args},
        "sandbox": {"timeout": 20},
    }
    callback = GenerateBetweenEpochs(generate, out_dir=str(tmp_path / "run"), backend="config")
    recorder = RecordPrompts()
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1, save_top_k=0
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        reload_dataloaders_every_n_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback, recorder, checkpoint],
    )
    data = SFTDataModule(str(tiny_model_dir), [str(sft)], max_length=512, batch_size=2)
    model = PolicyModule(str(tiny_model_dir), vocab_size=data.vocab_size, lr=1e-3)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return callback, recorder


def _tree_lines(tmp_path) -> list[str]:
    shard = tmp_path / "run" / "epoch-000" / "trees" / "trees-00000-of-00001.jsonl"
    return shard.read_text().splitlines()


def test_second_epoch_trains_on_the_new_trees(tiny_model_dir, tmp_path, problems):
    first, second, sft, b_file = problems
    callback, recorder = _fit(tiny_model_dir, tmp_path, sft, b_file)

    folder = tmp_path / "run" / "epoch-000"
    assert (folder / "policy" / "config.json").is_file()  # the weights after epoch 0, exported
    trees = [json.loads(line) for line in _tree_lines(tmp_path)]
    assert sorted(t["problem_id"] for t in trees) == sorted(p.index for p in second)
    solved = {json.loads(line)["problem_id"] for line in (folder / "sft.jsonl").open()}
    assert solved and solved <= {p.index for p in second}

    prompts_a = {build_prompt(p.question) for p in first}
    new_prompts = {build_prompt(p.question) for p in second if p.index in solved}
    assert recorder.seen[0] <= prompts_a and recorder.seen[0]
    assert recorder.seen[1] == new_prompts  # epoch 1: every batch from the new records
    assert callback.served == [str(folder / "sft.jsonl")]
    # no generation after the last epoch
    assert not (tmp_path / "run" / "epoch-001").exists()


def test_interrupted_generation_resumes_without_regenerating(tiny_model_dir, tmp_path, problems):
    first, second, sft, b_file = problems
    kind = f"{__name__}:FailingBackend"
    FailingBackend.armed = True
    try:
        with pytest.raises(RuntimeError, match="killed in the middle"):
            _fit(tiny_model_dir, tmp_path, sft, b_file, kind=kind)
    finally:
        FailingBackend.armed = False
    before = _tree_lines(tmp_path)
    assert 0 < len(before) < len(second)  # some trees were finished, not all
    export = tmp_path / "run" / "epoch-000" / "policy" / "model.safetensors"
    exported_at = export.stat().st_mtime_ns

    callback, recorder = _fit(
        tiny_model_dir,
        tmp_path,
        sft,
        b_file,
        kind=kind,
        ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"),
    )
    after = _tree_lines(tmp_path)
    assert after[: len(before)] == before  # finished trees kept as they were
    ids = [json.loads(line)["problem_id"] for line in after]
    assert sorted(ids) == sorted(p.index for p in second)  # each problem once
    assert export.stat().st_mtime_ns == exported_at  # the same weights generated the rest
    assert recorder.seen[1]


def test_transformers_backend_generates_with_the_exported_weights(
    tiny_model_dir, tmp_path, problems
):
    """backend "hf": the export itself generates. A policy trained for a few steps solves
    nothing, so there is no new record and the datamodule keeps serving its own."""
    first, second, sft, b_file = problems
    generate = {
        "problems": {"source": str(b_file)},
        "schedule": [2],
        "batch_size": 8,
        "search": {"n": 2, "max_depth": 4, "sampling": {"max_tokens": 16}},
        "backend": {"args": {"dtype": "float32", "batch_size": 8}},
    }
    callback = GenerateBetweenEpochs(generate, out_dir=str(tmp_path / "run"), backend="hf")
    recorder = RecordPrompts()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        reload_dataloaders_every_n_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback, recorder],
    )
    data = SFTDataModule(str(tiny_model_dir), [str(sft)], max_length=512, batch_size=2)
    trainer.fit(PolicyModule(str(tiny_model_dir), vocab_size=data.vocab_size), datamodule=data)

    saved = yaml.safe_load(
        (tmp_path / "run" / "epoch-000" / "trees" / "generate_config.yaml").read_text()
    )
    assert saved["backend"]["kind"] == "rstar_pl.backends.hf:HFBackend"
    assert saved["backend"]["args"]["model"] == str(tmp_path / "run" / "epoch-000" / "policy")
    assert len(_tree_lines(tmp_path)) == len(second)
    (generation,) = callback.generations
    assert generation["records"] == 0 and generation["rss_mib_after"] > 0
    assert generation["rss_mib_peak"] >= max(
        generation["rss_mib_before"], generation["rss_mib_after"]
    )
    prompts_a = {build_prompt(p.question) for p in first}
    assert recorder.seen[1] <= prompts_a and callback.served is None


def test_refuses_a_trainer_that_does_not_reload(tiny_model_dir, tmp_path, problems):
    _, _, sft, b_file = problems
    callback = GenerateBetweenEpochs(
        {"problems": {"source": str(b_file)}}, out_dir=str(tmp_path), every_n_epochs=2
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = SFTDataModule(str(tiny_model_dir), [str(sft)], max_length=512, batch_size=2)
    model = PolicyModule(str(tiny_model_dir), vocab_size=data.vocab_size)
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs: 2"):
        trainer.fit(model, datamodule=data)


def test_callback_is_configured_in_a_fit_yaml(tiny_model_dir, tmp_path, problems):
    """The callback as a plain `fit` config entry: LightningCLI builds it from YAML."""
    from rstar_pl.train import main

    _, second, sft, b_file = problems
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "reload_dataloaders_every_n_epochs": 1,
            "default_root_dir": str(tmp_path),
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "callbacks": [
                {
                    "class_path": "modules.generation.GenerateBetweenEpochs",
                    "init_args": {
                        "generate": {
                            "problems": {"source": str(b_file)},
                            "schedule": [3],
                            "search": {"n": 2, "max_depth": 8, "errors_threshold": 2},
                            "backend": {"kind": "scripted", "args": {"p_wrong": 0.2}},
                        },
                        "out_dir": str(tmp_path / "run"),
                        "backend": "config",
                    },
                }
            ],
        },
        "model": {
            "class_path": "modules.PolicyModule",
            "init_args": {"model": str(tiny_model_dir), "lr": 1e-3},
        },
        "data": {
            "class_path": "datamodules.SFTDataModule",
            "init_args": {"train_files": [str(sft)], "max_length": 512, "batch_size": 2},
        },
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    main("fit", ["--config", str(path)])
    trees = Path(tmp_path / "run" / "epoch-000" / "trees").glob("*.jsonl")
    assert sum(len(f.read_text().splitlines()) for f in trees) == len(second)
