"""Which policy a `--checkpoint` argument names, as a folder a backend can load.

Two kinds of checkpoint exist in this project:

- a Hugging Face folder (`config.json` plus weights and tokenizer), what
  training exports and what vLLM, lm-eval and transformers load directly;
- a Lightning `.ckpt` file written during training. Turning it into an HF
  folder is the training code's job; `LIGHTNING_EXPORT` names the function that
  does it (`fn(ckpt_path, out_dir) -> out_dir`), and until that module exists
  a `.ckpt` is answered with the command to export it by hand.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

__all__ = ["LIGHTNING_EXPORT", "CheckpointError", "resolve_checkpoint"]

#: "module:function" that exports a Lightning policy checkpoint to an HF folder.
LIGHTNING_EXPORT = "modules.export:export_policy"


class CheckpointError(ValueError):
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
        module_name, func_name = LIGHTNING_EXPORT.split(":")
        try:
            export = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError):
            raise CheckpointError(
                f"{ckpt}: Lightning .ckpt checkpoints need the training exporter "
                f"{LIGHTNING_EXPORT}, which is not available yet; export the policy to a "
                "Hugging Face folder and pass that folder as --checkpoint"
            ) from None
        return Path(export(ckpt, Path(export_dir)))
    raise CheckpointError(
        f"checkpoint {str(ckpt)!r} not found; pass a Hugging Face model folder or a .ckpt file"
    )
