"""The tokenizer of a policy or PPM, loaded the same way for training and scoring.

`load_tokenizer` makes sure the step tokens of `rstar_pl.steps` are whole
tokens (added as ordinary, non-special tokens, so decoding keeps them and stop
strings match) and that a pad token exists. Added tokens take the ids after the
checkpoint's own vocabulary (`modules.hf` starts each one's embedding row at the
mean of the rows of the pieces its text splits into). A pad token equal to EOS
(SmolLM2) is handled where the project pads: attention masks and -100 labels mark the padding (so an
example's final EOS is still learned), and the HF backend counts the EOS that
ended a row although the padding after it has the same id. `encode_values` and `pad_values`
turn partial trajectories into the PPM's inputs; the pair datamodule and the
PPM scorer both use them, so training and inference see the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from rstar_pl.errors import UserError
from rstar_pl.steps import STEP_TOKENS

__all__ = ["add_step_tokens", "encode_values", "load_tokenizer", "pad_values"]


def load_tokenizer(name_or_path: str, *, padding_side: Literal["left", "right"] = "right"):
    """Load a Hugging Face tokenizer and add the step tokens it lacks.

    Returns:
        A `PreTrainedTokenizerBase` with every token of `STEP_TOKENS` in its
        vocabulary and a pad token (the EOS token when the model has none).
    """
    from transformers import AutoTokenizer

    tokenizer = add_step_tokens(AutoTokenizer.from_pretrained(name_or_path))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"{name_or_path}: tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def add_step_tokens(tokenizer):
    """Add the step tokens `tokenizer` lacks, in `STEP_TOKENS` order (their ids follow its
    vocabulary in that order, which `modules.hf` relies on to find each new row's text)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in STEP_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=False)
    return tokenizer


def encode_values(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, cut from the left to at most `max_length` tokens.

    The PPM judges the last step of a partial trajectory, so a text that is too
    long loses its beginning (the question), never its end.
    """
    if not texts:
        return []
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for i, seq in enumerate(ids):
        if not seq:
            raise ValueError(f"text {i} is empty; the PPM scores non-empty partial trajectories")
    return [seq[-max_length:] for seq in ids]


def pad_values(
    ids: Sequence[Sequence[int]], pad_id: int, padding_side: Literal["left", "right"] = "left"
) -> dict[str, torch.Tensor]:
    """Pad token-id lists to one width. Returns input_ids and attention_mask, [batch, seq]."""
    width = max(len(seq) for seq in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        span = slice(width - len(seq), width) if padding_side == "left" else slice(0, len(seq))
        input_ids[row, span] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
