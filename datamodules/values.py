"""Texts with a target value for the two pointwise reward models (`PPMModule(loss=...)`).

The paper's reward-model ablation compares the PPM (pairs, `pairs.py`) with a
Q-value regressor and an outcome model trained on the same trees. `extract`
writes their data beside `pairs.jsonl`:

- `step_values.jsonl`: every step some rollout passed through, as the partial
  trajectory ending at it, with the step's Q-value (`loss: q_regression`);
- `outcomes.jsonl`: every distinct graded trajectory, whole, with +1 for a
  correct final answer and -1 for a wrong one (`loss: outcome`).

One record (`rstar_pl.data.records.read_values`): `{"problem_id", "prompt", "completion", "target", "kind"}`;
`prompt + completion` is the text the model scores (tokenised and cut from the
left as the pairs are, `tokenizer.encode_values`), `target` a number in
[-1, 1]. A batch of B records:

    {"input_ids": [B, seq], "attention_mask": [B, seq], "target": [B]}

The hold-out split keeps the records of a problem together (`base.hold_out`
with `group` = problem_id).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch

from datamodules.base import RecordsDataModule, hold_out
from modules.tokenizer import encode_values, load_tokenizer, pad_values
from rstar_pl.data.records import ValueExample, read_values
from rstar_pl.errors import UserError

__all__ = ["ValueDataModule", "ValueExample", "collate_values", "read_values"]


def collate_values(
    rows: list[tuple[list[int], float]], pad_id: int, padding_side: str
) -> dict[str, torch.Tensor]:
    """[(ids, target)] * B -> input_ids, attention_mask [B, seq] and target [B]."""
    batch = pad_values([ids for ids, _ in rows], pad_id, padding_side)
    batch["target"] = torch.tensor([t for _, t in rows], dtype=torch.float32)
    return batch


class ValueDataModule(RecordsDataModule):
    """Scored texts for the Q-value and outcome reward models.

    Same arguments as `PairDataModule` (so a round's `ppm.data` settings carry over):

    Args:
        model: hub id or folder whose tokenizer to use (the policy the model starts from).
        train_files: `step_values.jsonl` or `outcomes.jsonl` files.
        val_files: validation files; when empty, `val_size` records are held out (whole
            problems, seeded).
        val_size, max_length, batch_size, padding_side, num_workers, seed: as for pairs;
            `batch_size` counts texts.
    """

    def __init__(
        self,
        model: str,
        train_files: list[str],
        val_files: list[str] | None = None,
        val_size: int = 0,
        max_length: int = 4096,
        batch_size: int = 8,
        padding_side: Literal["left", "right"] = "left",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if padding_side not in ("left", "right"):
            raise UserError(f"data.padding_side is {padding_side!r}; allowed: 'left', 'right'")
        if not train_files:
            raise UserError(
                "data.train_files is empty; give a step_values.jsonl or outcomes.jsonl file"
            )
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(model, padding_side=padding_side)
        self._train: list = []
        self._val: list = []

    def _encode(self, examples: list[ValueExample]) -> list[tuple[list[int], float]]:
        ids = encode_values(
            self.tokenizer, [e.prompt + e.completion for e in examples], self.hparams.max_length
        )
        return list(zip(ids, [e.target for e in examples]))

    def setup(self, stage: str | None = None) -> None:
        if self._train or self._val:
            return
        hp = self.hparams
        train = [e for f in hp.train_files for e in read_values(f)]
        if not train:
            raise UserError(f"data.train_files {list(hp.train_files)}: no records (empty)")
        if hp.val_files:
            val = [e for f in hp.val_files for e in read_values(f)]
        else:
            train, val = hold_out(train, hp.val_size, hp.seed)
        self._train = self._encode(train)
        self._val = self._encode(val)

    def _collate(self):
        return partial(
            collate_values,
            pad_id=self.tokenizer.pad_token_id,
            padding_side=self.hparams.padding_side,
        )
