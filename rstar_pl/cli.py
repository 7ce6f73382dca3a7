"""`rstar-pl` / `python -m rstar_pl`: one entry point, one subcommand per job.

Each subcommand lives in its own module as `main(argv) -> int` and is imported
only when used, so `rstar-pl tiny-model` does not pay for importing vLLM.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rstar_pl.demo:main", "the whole loop on CPU with tiny models (minutes)"),
    "harness": ("harness.cli:main", "evaluate checkpoints on the math benchmarks (same as `harness`)"),
    "tiny-model": ("rstar_pl.tiny:main", "build a tiny random Qwen2 model and tokenizer"),
    "import-model": ("rstar_pl.import_model:main", "a GGUF checkpoint to a Hugging Face model folder"),
    "generate": ("rstar_pl.generate:main", "MCTS trees (JSONL shards, resumable) for a problem set"),
    "extract": ("rstar_pl.extract:main", "SFT records, PPM pairs and difficulty from tree files"),
    "fit": ("rstar_pl.train:fit_main", "train the policy / PPM (LightningCLI; round configs train both)"),
    "validate": ("rstar_pl.train:validate_main", "validate a policy or PPM (LightningCLI)"),
    "test": ("rstar_pl.train:test_main", "test a policy or PPM (LightningCLI)"),
    "predict": ("rstar_pl.train:predict_main", "predict with a policy or PPM (LightningCLI)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    return "usage: rstar-pl SUBCOMMAND [ARGS...]\n\nsubcommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"rstar-pl: unknown subcommand {name!r}; available: {', '.join(sorted(COMMANDS))}",
            file=sys.stderr,
        )
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Bad input is reported in one line; anything else is a bug and keeps its traceback.
        print(f"rstar-pl {name}: error: {err}", file=sys.stderr)
        return 2
