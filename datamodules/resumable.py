"""A DataLoader that resumes mid-epoch with the same data order.

Lightning saves the `state_dict()` of every training dataloader that has one
in its checkpoints and calls `load_state_dict()` before iterating again. This
loader remembers how many batches of the current epoch it has handed out
(Lightning does not prefetch from sized loaders, so that is the number of
batches trained on) and, after a restore, skips that many on its next pass.
Together with `EpochShuffleSampler`, whose order depends only on the seed and
the epoch, a resumed run sees exactly the batches an uninterrupted run would.
Under DDP Lightning swaps the sampler for a `DistributedSampler`, whose order
is also a function of seed and epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

__all__ = ["EpochShuffleSampler", "ResumableDataLoader"]


class EpochShuffleSampler(RandomSampler):
    """A random permutation per epoch, drawn from `seed + epoch` alone.

    A subclass of `RandomSampler` so that Lightning sees a shuffled loader and
    shuffles its `DistributedSampler` too.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()

    def __len__(self) -> int:
        return len(self.data_source)


class ResumableDataLoader(DataLoader):
    """A `DataLoader` whose position inside the epoch is saved and restored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0
        self._skip = 0

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        self._served = 0
        iterator = super().__iter__()
        for _ in range(skip):
            next(iterator)
            self._served += 1
        for batch in iterator:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches_served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        served = int(state.get("batches_served", 0))
        # A checkpoint taken at the end of an epoch resumes at the start of the next.
        self._skip = served if served < len(self) else 0
