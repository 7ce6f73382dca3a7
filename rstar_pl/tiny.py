"""Tiny random Qwen2 models built on the spot, so nothing is downloaded.

`build_tiny_model(out_dir)` trains a byte-level BPE tokenizer on a small
built-in corpus of step-format text, adds the step tokens, and saves a randomly
initialised Qwen2-architecture causal LM of a few hundred thousand parameters
next to it. The folder is a normal Hugging Face checkpoint: transformers and
vLLM load it, and every test that needs a model uses it.

The attention head size is 32 because vLLM's CPU backend rejects 16.

    python -m rstar_pl tiny-model --out runs/tiny
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rstar_pl.files import atomic_dir
from rstar_pl.steps import FEW_SHOT_EXAMPLES, STEP_TOKENS, build_prompt

__all__ = ["TINY_CONFIG", "build_tiny_model", "main"]

EOS = "<|endoftext|>"

#: The smallest vocabulary the tokenizer can have: 256 byte symbols and EOS.
MIN_VOCAB = 257

#: Architecture of the tiny model (a Qwen2 config); about 0.2 M parameters.
TINY_CONFIG: dict = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rope_theta": 10000.0,
}


def _corpus() -> list[str]:
    """Step-format text and math words for the tokenizer to learn merges from."""
    texts = []
    for question, response in FEW_SHOT_EXAMPLES:
        texts.append(build_prompt(question) + response)
    for a in range(2, 40):
        texts.append(
            f"<code>\n# Step 1: compute the product of {a} and {a + 3}\nx = {a} * {a + 3}\n"
            f"<end_of_step>\n# Now print the final answer\nprint(x)\n<end_of_code>\n"
            f"<output>{a * (a + 3)}<end_of_output>\n"
            f"<answer>The answer is \\boxed{{{a * (a + 3)}}}.<end_of_answer>"
        )
    texts.append(
        "import sympy as sp\nimport numpy as np\nimport math\nx = sp.symbols('x')\n"
        "sp.solve(sp.Eq(x**2, 4), x)\nsp.simplify\\frac{1}{2}\\sqrt{3}\\pi\\left(\\right)"
    )
    return texts


def build_tiny_model(out_dir: str | os.PathLike, *, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Write a tiny random Qwen2 causal LM and its tokenizer to `out_dir`.

    The same seed gives the same weights and tokenizer. The folder is written
    in a temporary sibling and renamed into place, so an interrupted build
    leaves nothing half-written.

    Returns:
        The output folder.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be >= {MIN_VOCAB} (the 256 byte symbols of the "
                         f"byte-level BPE and the end-of-text token), got {vocab_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; choose a new --out")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS, pad_token=EOS, bos_token=None, unk_token=None
    )
    # Step tokens are ordinary added tokens: kept when decoding, so stop strings match.
    tokenizer.add_tokens(list(STEP_TOKENS), special_tokens=False)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
        **TINY_CONFIG,
    )
    model = Qwen2ForCausalLM(config)

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "rstar_tiny.json").write_text(json.dumps({"seed": seed, "vocab_size": vocab_size}))
    return out


def main(argv: list[str]) -> int:
    from rstar_pl.cli import ArgumentParser

    parser = ArgumentParser(
        prog="rstar-pl tiny-model",
        description="Build a tiny random Qwen2 model and tokenizer (no downloads).",
    )
    parser.add_argument("--out", required=True, help="folder to create (new or empty)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (default 0)")
    parser.add_argument("--vocab-size", type=int, default=1024,
                        help=f"BPE vocabulary before the step tokens, >= {MIN_VOCAB} (default 1024)")
    args = parser.parse_args(argv)
    out = build_tiny_model(args.out, seed=args.seed, vocab_size=args.vocab_size)
    print(f"tiny model written to {out}")
    return 0
