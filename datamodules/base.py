"""What the SFT and pair DataModules share: the seeded hold-out split and the loaders.

Subclasses fill `_train` and `_val` in `setup` and say how to batch with `_collate`;
the training loader is resumable mid-epoch (`resumable.py`) and reshuffles each epoch
from the data seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

import lightning as L
from torch.utils.data import DataLoader

from datamodules.resumable import EpochShuffleSampler, ResumableDataLoader

__all__ = ["RecordsDataModule", "hold_out"]

T = TypeVar("T")


def hold_out(records: Sequence[T], val_size: int, seed: int) -> tuple[list[T], list[T]]:
    """(train, val) split by problem: whole groups (`record.group`, the problem
    id) are held out, in an order shuffled with `seed`, until at least
    `val_size` records are; one group always stays for training. Pairs and SFT
    records of one problem share prefixes, so a record-level split would let
    validation measure memorised prefixes."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(getattr(record, "group", "") or f"#{i}", []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    held: set[int] = set()
    for name in order[: max(0, len(order) - 1)]:
        if len(held) >= val_size:
            break
        held.update(groups[name])
    train = [r for i, r in enumerate(records) if i not in held]
    val = [r for i, r in enumerate(records) if i in held]
    return train, val


class RecordsDataModule(L.LightningDataModule):
    """Loaders over `_train` / `_val` rows; subclasses define `_collate` and `setup`.

    Expects `tokenizer` and the hyperparameters `batch_size`, `num_workers` and `seed`.
    """

    #: which file of an extraction (`rstar-pl extract`'s `<records>.jsonl`) this module reads
    records: str = "sft"
    _train: list
    _val: list

    @property
    def vocab_size(self) -> int:
        """Tokenizer size with the step tokens added (the model resizes to at least this)."""
        return len(self.tokenizer)

    def _collate(self) -> Callable:
        raise NotImplementedError

    def use_train_files(self, files: Sequence[str]) -> None:
        """Serve the records of `files` from now on: re-read, re-split and re-tokenise.

        The loaders built from then on see the new records, i.e. from the next
        epoch under `Trainer(reload_dataloaders_every_n_epochs=...)` (the
        generation callback, `modules.generation`, relies on this).
        """
        self.hparams.train_files = list(files)
        self._train, self._val = [], []
        self.setup("fit")

    def train_dataloader(self) -> ResumableDataLoader:
        return ResumableDataLoader(
            self._train,
            batch_size=self.hparams.batch_size,
            sampler=EpochShuffleSampler(self._train, seed=self.hparams.seed),
            collate_fn=self._collate(),
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self._val:
            return []
        return DataLoader(
            self._val,
            batch_size=self.hparams.batch_size,
            shuffle=False,
            collate_fn=self._collate(),
            num_workers=self.hparams.num_workers,
        )

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader
