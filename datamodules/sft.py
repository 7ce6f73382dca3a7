"""The policy's supervised fine-tuning data as a LightningDataModule.

Reads SFT files (`rstar_pl.data.records.read_sft`: the extractor's `sft.jsonl` or the
official rStar `{"query", "response"}` JSON), renders each question with the
step-format prompt, tokenises prompt and response separately (so the prompt
mask is exact and matches what the model sees at inference) and appends EOS
to the response. Loss is on response tokens only.

Truncation policy (`truncation`): an example longer than `max_length` tokens is
dropped ("drop", the default: a cut response would teach the model to stop
mid-solution), or cut at `max_length` from the right ("right"); an example
whose prompt alone fills `max_length` is always dropped. The number dropped is
logged.

Batching: dynamic right padding to the longest example of the batch, or, with
`packing=True`, first-fit-decreasing packing of examples into rows of at most
`max_length` tokens that do not attend to each other (see `packing.py`); then
`batch_size` counts rows. The global batch is
`batch_size * devices * num_nodes * accumulate_grad_batches`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Literal

from datamodules.base import RecordsDataModule, hold_out
from datamodules.packing import Tokenised, collate_packed, collate_padded, pack_lengths
from modules.losses import IGNORE_INDEX
from modules.tokenizer import load_tokenizer
from rstar_pl.data.records import SFTExample, read_sft
from rstar_pl.errors import UserError

__all__ = ["SFTDataModule", "tokenise_sft"]

log = logging.getLogger(__name__)


def tokenise_sft(
    tokenizer, examples: Sequence[SFTExample], max_length: int, truncation: str
) -> tuple[list[Tokenised], int]:
    """Token ids and labels (-100 on the prompt) of each example.

    Returns:
        (kept, dropped): the tokenised examples that fit the policy, and how
        many were dropped.
    """
    if not examples:
        return [], 0
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    responses = tokenizer([e.response for e in examples], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    kept, dropped = [], 0
    for prompt, response in zip(prompts, responses):
        response = response + eos
        ids = prompt + response
        if len(prompt) >= max_length or (len(ids) > max_length and truncation == "drop"):
            dropped += 1
            continue
        labels = [IGNORE_INDEX] * len(prompt) + response
        kept.append((ids[:max_length], labels[:max_length]))
    return kept, dropped


class SFTDataModule(RecordsDataModule):
    """SFT examples for the policy.

    Args:
        model: hub id or folder whose tokenizer to use (the policy's base model).
        train_files: SFT files (.jsonl extractor format or .json official format).
        val_files: validation files; when empty, `val_size` examples are held
            out of the training files (seeded).
        val_size: examples to hold out (whole problems, at least this many examples) when
            there are no `val_files`; one problem always stays for training.
        max_length: the sequence length (paper: 4096).
        batch_size: examples (or packed rows) per device per step.
        packing: pack several examples per row (no cross-attention between them).
        truncation: "drop" or "right"; see the module docstring.
        num_workers: DataLoader worker processes.
        seed: seed of the hold-out split and of the per-epoch shuffle.
    """

    def __init__(
        self,
        model: str,
        train_files: list[str],
        val_files: list[str] | None = None,
        val_size: int = 0,
        max_length: int = 4096,
        batch_size: int = 1,
        packing: bool = False,
        truncation: Literal["drop", "right"] = "drop",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if truncation not in ("drop", "right"):
            raise UserError(f"data.truncation is {truncation!r}; allowed: 'drop', 'right'")
        if not train_files:
            raise UserError("data.train_files is empty; give at least one SFT file")
        self.save_hyperparameters()
        # Loaded here, not in the module, so that `vocab_size` can size the model's embeddings.
        self.tokenizer = load_tokenizer(model, padding_side="right")
        self._train: list = []
        self._val: list = []
        self.val_examples: list[SFTExample] = []

    def setup(self, stage: str | None = None) -> None:
        if self._train or self._val:
            return
        hp = self.hparams
        train = [e for f in hp.train_files for e in read_sft(f)]
        if not train:
            raise UserError(
                f"data.train_files {list(hp.train_files)}: no SFT records (empty); "
                "extract writes none when no problem was solved"
            )
        if hp.val_files:
            val = [e for f in hp.val_files for e in read_sft(f)]
        else:
            train, val = hold_out(train, hp.val_size, hp.seed)
        self.val_examples = val
        train_tok, dropped_train = tokenise_sft(self.tokenizer, train, hp.max_length, hp.truncation)
        val_tok, dropped_val = tokenise_sft(self.tokenizer, val, hp.max_length, hp.truncation)
        if dropped_train or dropped_val:
            log.warning(
                "SFT: dropped %d training and %d validation examples longer than max_length=%d "
                "(truncation=%r)",
                dropped_train,
                dropped_val,
                hp.max_length,
                hp.truncation,
            )
        if not train_tok:
            raise UserError(f"{hp.train_files}: no SFT example fits max_length={hp.max_length}")
        self._train = self._rows(train_tok)
        self._val = self._rows(val_tok)

    def _rows(self, examples: list[Tokenised]) -> list:
        if not self.hparams.packing:
            return examples
        bins = pack_lengths([len(ids) for ids, _ in examples], self.hparams.max_length)
        return [[examples[i] for i in b] for b in bins]

    def _collate(self):
        fn = collate_packed if self.hparams.packing else collate_padded
        return partial(fn, pad_id=self.tokenizer.pad_token_id)
