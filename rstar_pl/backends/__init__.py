"""Generation and scoring backends behind the protocols in `base`."""

from rstar_pl.backends.base import Completion, PolicyBackend, Scorer

__all__ = ["Completion", "PolicyBackend", "Scorer"]
