"""Batching of tokenised SFT examples: padding, and sequence packing.

Packing puts several short examples into one row of up to `max_length` tokens
so that a batch carries fewer padding tokens. Packed examples must not see each
other, so a packed row carries

* `position_ids` that restart at 0 for every example (rotary positions are
  those of the example alone), and
* no `attention_mask`: given position ids and no mask, Hugging Face models
  (transformers >= 5) find the restarts and build a block-diagonal causal mask
  for eager and SDPA attention, and pass sequence boundaries to
  flash-attention. This needs `use_cache=False` (transformers looks for
  restarts only without a cache; `PolicyModule` passes it).
  `tests/test_datamodules.py` checks that the logits of a
  packed row equal those of its examples run one by one.

Labels need no separator: every example starts with prompt tokens, whose label
is -100, so the last token of one example never learns to predict the next
example's first token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from modules.losses import IGNORE_INDEX

__all__ = ["collate_packed", "collate_padded", "pack_lengths"]

#: One tokenised example: (input_ids, labels), equal lengths, labels -100 on the prompt.
Tokenised = tuple[list[int], list[int]]


def pack_lengths(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group example indices into bins whose total length is at most `capacity`.

    First-fit decreasing: deterministic (ties keep index order), and within
    11/9 of the optimal number of bins. Each bin's indices are in ascending
    order so that a row reads its examples in data order.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        if lengths[i] > capacity:
            raise ValueError(
                f"example {i} has {lengths[i]} tokens; the packing capacity is {capacity}"
            )
        for b, room in enumerate(free):
            if lengths[i] <= room:
                bins[b].append(i)
                free[b] -= lengths[i]
                break
        else:
            bins.append([i])
            free.append(capacity - lengths[i])
    return [sorted(b) for b in bins]


def collate_padded(examples: Sequence[Tokenised], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch of examples to its longest one.

    Returns input_ids, labels (-100 on padding) and attention_mask, each [batch, seq].
    """
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def collate_packed(rows: Sequence[Sequence[Tokenised]], pad_id: int) -> dict[str, torch.Tensor]:
    """Concatenate each row's examples; pad rows to the longest.

    Returns input_ids, labels and position_ids, each [batch, seq]. Padding at
    the end of a row restarts its positions too, so it is a segment of its own
    that no example attends to, and its labels are -100.
    """
    width = max(sum(len(ids) for ids, _ in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for ids, labs in row:
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            labels[r, start:end] = torch.tensor(labs)
            position_ids[r, start:end] = torch.arange(len(ids))
            start = end
        position_ids[r, start:] = torch.arange(width - start)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
    }
