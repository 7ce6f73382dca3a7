"""LightningDataModules of rstar-pl: SFT examples for the policy, step pairs for the PPM."""

from datamodules.pairs import PairDataModule
from datamodules.sft import SFTDataModule
from rstar_pl.data.records import PairExample, RecordError, SFTExample, read_pairs, read_sft

__all__ = [
    "PairDataModule",
    "PairExample",
    "RecordError",
    "SFTDataModule",
    "SFTExample",
    "read_pairs",
    "read_sft",
]
