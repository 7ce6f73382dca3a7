"""Seeds derived from a run seed and names, so that every tree has its own
reproducible randomness (the reference code seeds every run with 0, which makes
"independent" runs correlated)."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a fixed function of `parts` (ints and strings),
    stable across processes and Python versions (no `hash()` salting)."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
