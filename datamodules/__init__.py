"""LightningDataModules of rstar-pl: SFT examples for the policy, step pairs for the PPM."""

from datamodules.pairs import PairDataModule
from datamodules.records import PairExample, RecordError, SFTExample, read_pairs, read_sft
from datamodules.sft import SFTDataModule

__all__ = [
    "PairDataModule",
    "PairExample",
    "RecordError",
    "SFTDataModule",
    "SFTExample",
    "read_pairs",
    "read_sft",
]
