"""An interrupted fit resumes from its last checkpoint mid-epoch and ends where an
uninterrupted run ends: same global step, same batches in the same order, same weights."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from datamodules import SFTDataModule
from modules import PolicyModule

MAX_STEPS = 7  # 10 examples / batch 2 = 5 batches per epoch: the run crosses an epoch


class Interrupt(Exception):
    pass


class Recorder(Callback):
    """Records the first token ids of every training batch, and optionally crashes."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.crash_at = crash_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.crash_at:
            raise Interrupt(f"simulated crash before step {self.crash_at}")
        self.batches.append(batch["input_ids"][:, :40].sum(dim=1).tolist())


def _fit(model_dir, data, ckpt_dir, recorder, ckpt_path=None):
    L.seed_everything(0)
    dm = SFTDataModule(str(model_dir), [str(data)], max_length=512, batch_size=2, seed=3)
    module = PolicyModule(str(model_dir), vocab_size=dm.vocab_size, lr=1e-3, warmup_steps=2)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=MAX_STEPS,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=ckpt_dir,
        num_sanity_val_steps=0,
        callbacks=[
            recorder,
            ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=1, save_last=True, save_top_k=0),
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, module


def test_resume_mid_epoch_matches_uninterrupted(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "problem_id": f"p{i}",
                    "question": f"What is {i} times {i + 2}?",
                    "mean_q": 1.0,
                    "min_q": 1.0,
                    "response": f"<code>\nx = {i} * {i + 2}\n<end_of_step>\nprint(x)\n<end_of_code>\n"
                    f"<output>{i * (i + 2)}<end_of_output>\n<answer>\\boxed{{{i * (i + 2)}}}<end_of_answer>",
                }
            )
            + "\n"
            for i in range(10)
        )
    )

    full = Recorder()
    trainer, reference = _fit(tiny_model_dir, data, tmp_path / "a", full)
    assert trainer.global_step == MAX_STEPS

    first = Recorder(crash_at=3)  # mid-epoch: after 3 of the 5 batches of epoch 0
    with pytest.raises(Interrupt):
        _fit(tiny_model_dir, data, tmp_path / "b", first)
    assert torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)["global_step"] == 3

    second = Recorder()
    trainer, resumed = _fit(tiny_model_dir, data, tmp_path / "b", second, ckpt_path="last")
    assert trainer.global_step == MAX_STEPS
    assert first.batches + second.batches == full.batches
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
