"""A `Scorer` backed by a trained process preference model (transformers, CPU or GPU).

`PPMScorer.score(texts)` tokenises each partial trajectory exactly as the pair
datamodule did in training (`modules.tokenizer.encode_values`: cut from the
left to `max_length`, so the step being judged is never lost), left-pads a
batch, and returns the value model's outputs (tanh of the value head at the
last real token), in [-1, 1], in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

__all__ = ["PPMScorer"]


class PPMScorer:
    """Scores partial trajectories with a PPM export folder or `.ckpt`.

    Args:
        model: a `modules.value_model.ValueHeadModel` (or use `from_path`).
        tokenizer: its tokenizer.
        max_length: tokens kept per text (from the end).
        batch_size: texts per forward pass.
        device: torch device; default: the model's.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_length: int = 4096,
        batch_size: int = 8,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.model.to(self.device)

    @classmethod
    def from_path(
        cls, path: str | os.PathLike, *, dtype: str | None = "float32", **kwargs
    ) -> PPMScorer:
        """Load `modules.export.load_ppm(path)` and wrap it."""
        from modules.export import load_ppm

        model, tokenizer = load_ppm(path, dtype=dtype)
        return cls(model, tokenizer, **kwargs)

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> list[float]:
        from modules.tokenizer import encode_values, pad_values

        values: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            ids = encode_values(self.tokenizer, chunk, self.max_length)
            batch = pad_values(ids, self.tokenizer.pad_token_id, "left")
            out = self.model(
                batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            )
            values.extend(out.float().cpu().tolist())
        return values
