"""Which policy a `--checkpoint` argument names, as a folder a backend can load.

Two kinds of checkpoint exist in this project:

- a Hugging Face folder (`config.json` plus weights and tokenizer), what
  training exports and what vLLM, lm-eval and transformers load directly;
- a Lightning `.ckpt` of a `PolicyModule`, written during training. It is
  loaded with the training code's `modules.export.load_policy` and exported
  once, with `export_policy`, into a folder under the evaluation's output, so
  that every backend (vLLM included) loads the same thing. The export is
  reused while it is newer than the `.ckpt`.
"""

from __future__ import annotations

import os
from pathlib import Path

from rstar_pl.errors import UserError

__all__ = ["CheckpointError", "resolve_checkpoint"]


class CheckpointError(UserError):
    """A --checkpoint that is missing or cannot be loaded as a policy."""


def resolve_checkpoint(path: str | os.PathLike, *, export_dir: str | os.PathLike) -> Path:
    """The HF folder of a checkpoint; a `.ckpt` is exported into `export_dir` first."""
    ckpt = Path(path).expanduser()
    if ckpt.is_dir():
        if not (ckpt / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint folder {str(ckpt)!r} has no config.json; expected a Hugging Face "
                "model folder (save_pretrained) or a Lightning .ckpt file"
            )
        return ckpt
    if ckpt.is_file() and ckpt.suffix == ".ckpt":
        out = Path(export_dir)
        if (out / "config.json").is_file() and out.stat().st_mtime >= ckpt.stat().st_mtime:
            return out
        from modules.export import export_policy, load_policy

        model, tokenizer = load_policy(ckpt)
        return Path(export_policy(model, tokenizer, out))
    raise CheckpointError(
        f"checkpoint {str(ckpt)!r} not found; pass a Hugging Face model folder or a .ckpt file"
    )
