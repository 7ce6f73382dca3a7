"""The process preference model's step pairs as a LightningDataModule.

Reads pair files (`rstar_pl.data.records.read_pairs`: the extractor's `pairs.jsonl` or the
official rStar `{"prompt", "pos", "neg", ...}` JSON). Each pair becomes two
partial trajectories, `prompt + chosen` and `prompt + rejected`, tokenised and
cut with `tokenizer.encode_values`: a text longer than `max_length` loses its
beginning, never the step being judged (the same rule the PPM scorer uses at
inference).

A batch of B pairs is one tensor of 2B rows: rows 0..B-1 are the chosen
texts, rows B..2B-1 the rejected ones, padded together (`padding_side`, left
by default as at inference; the value head finds the last real token either
way):

    {"input_ids": [2B, seq], "attention_mask": [2B, seq], "pair_weight": [B]}

`pair_weight` is each pair's Eq. 4 weight (`records.read_pairs`), which the
PPM's loss uses. The hold-out split is by problem (`base.hold_out`).

The global batch (paper: 512 pairs) is
`batch_size * devices * num_nodes * accumulate_grad_batches`.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch

from datamodules.base import RecordsDataModule, hold_out
from modules.tokenizer import encode_values, load_tokenizer, pad_values
from rstar_pl.data.records import PairExample, read_pairs
from rstar_pl.errors import UserError

__all__ = ["PairDataModule", "collate_pairs"]


def collate_pairs(
    pairs: list[tuple[list[int], list[int], float]], pad_id: int, padding_side: str
) -> dict[str, torch.Tensor]:
    """[(chosen_ids, rejected_ids, weight)] * B -> input_ids and attention_mask
    [2B, seq], pair_weight [B]."""
    ids = [c for c, _, _ in pairs] + [r for _, r, _ in pairs]
    batch = pad_values(ids, pad_id, padding_side)
    batch["pair_weight"] = torch.tensor([w for _, _, w in pairs], dtype=torch.float32)
    return batch


class PairDataModule(RecordsDataModule):
    """Preference pairs for the PPM.

    Args:
        model: hub id or folder whose tokenizer to use (the policy the PPM starts from).
        train_files: pair files (.jsonl extractor format or .json official format).
        val_files: validation files; when empty, `val_size` pairs are held out (seeded).
        val_size: pairs to hold out (whole problems, at least this many pairs) when there
            are no `val_files`; one problem always stays for training.
        max_length: tokens per partial trajectory; longer ones are cut from the left.
        batch_size: pairs per device per step.
        padding_side: "left" (as the scorer does) or "right".
        num_workers: DataLoader worker processes.
        seed: seed of the hold-out split and of the per-epoch shuffle.
    """

    records = "pairs"

    def __init__(
        self,
        model: str,
        train_files: list[str],
        val_files: list[str] | None = None,
        val_size: int = 0,
        max_length: int = 4096,
        batch_size: int = 4,
        padding_side: Literal["left", "right"] = "left",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if padding_side not in ("left", "right"):
            raise UserError(f"data.padding_side is {padding_side!r}; allowed: 'left', 'right'")
        if not train_files:
            raise UserError("data.train_files is empty; give at least one pair file")
        self.save_hyperparameters()
        self.tokenizer = load_tokenizer(model, padding_side=padding_side)
        self._train: list = []
        self._val: list = []

    def _encode(self, pairs: list[PairExample]) -> list[tuple[list[int], list[int], float]]:
        n = self.hparams.max_length
        chosen = encode_values(self.tokenizer, [p.prompt + p.chosen for p in pairs], n)
        rejected = encode_values(self.tokenizer, [p.prompt + p.rejected for p in pairs], n)
        return list(zip(chosen, rejected, [p.weight for p in pairs]))

    def setup(self, stage: str | None = None) -> None:
        if self._train or self._val:
            return
        hp = self.hparams
        train = [p for f in hp.train_files for p in read_pairs(f)]
        if not train:
            raise UserError(
                f"data.train_files {list(hp.train_files)}: no preference pairs "
                "(empty); extract writes none when no problem has both correct and "
                "wrong trajectories"
            )
        if hp.val_files:
            val = [p for f in hp.val_files for p in read_pairs(f)]
        else:
            train, val = hold_out(train, hp.val_size, hp.seed)
        if not train:
            raise UserError(
                f"{hp.train_files}: no training pairs left after holding out val_size={hp.val_size}"
            )
        self._train = self._encode(train)
        self._val = self._encode(val)

    def _collate(self):
        return partial(
            collate_pairs,
            pad_id=self.tokenizer.pad_token_id,
            padding_side=self.hparams.padding_side,
        )
