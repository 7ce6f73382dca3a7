"""Tiny random Qwen2 models built on the spot, so nothing is downloaded.

`build_tiny_model(out_dir)` trains a tokenizer on a small built-in corpus of
step-format text, adds the step tokens, and saves a randomly initialised
Qwen2-architecture causal LM of a few hundred thousand parameters next to it.
The folder is a normal Hugging Face checkpoint: transformers and vLLM load it,
and every test that needs a model uses it.

Two tokenizers:

- `bpe` (default): byte-level BPE of `vocab_size` tokens; reads any text.
- `word`: one token per word of a corpus (with its leading space),
  punctuation run, newline and digit (`corpus="wordproblems"` adds every word
  of the synthetic domain, `rstar_pl.data.wordproblems`); other text falls
  back to bytes. On a closed domain this is what lets a model trained from
  scratch on a CPU learn in minutes: a problem and its solution take about 150
  tokens instead of about 600 characters.

`architecture` overrides entries of `TINY_CONFIG` (e.g. hidden_size 128 and 4
layers give the 1 M-parameter model of the demo). The attention head size is
32 because vLLM's CPU backend rejects 16.

    python -m rstar_pl tiny-model --out runs/tiny
    python -m rstar_pl tiny-model --out runs/wp --tokenizer word --corpus wordproblems
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rstar_pl.errors import UserError
from rstar_pl.files import atomic_dir
from rstar_pl.steps import FEW_SHOT_EXAMPLES, STEP_TOKENS, build_prompt

__all__ = ["TINY_CONFIG", "TinyModelConfig", "build_tiny_model", "main"]

EOS = "<|endoftext|>"
TOKENIZERS = ("bpe", "word")
CORPORA = ("steps", "wordproblems")

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


def _texts(corpus: str) -> list[str]:
    if corpus not in CORPORA:
        raise UserError(f"tiny model corpus {corpus!r}; allowed: {', '.join(CORPORA)}")
    texts = _corpus()
    if corpus == "wordproblems":
        from rstar_pl.data.wordproblems import corpus as wordproblem_corpus

        texts += list(wordproblem_corpus())
    return texts


def _bpe(texts: Iterable[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return bpe, None


def _word(texts: Iterable[str]):
    """A word-level vocabulary: byte-level BPE trained until every word of the
    corpus is one token.

    It pre-tokenises exactly as transformers' `Qwen2Tokenizer` does (the class
    `AutoTokenizer` rebuilds for a Qwen2 checkpoint from the vocabulary and
    merges, whatever the saved pipeline): words with their leading space or
    punctuation, single digits, punctuation runs, whitespace. Training, every
    loader and vLLM therefore split text the same way, and text outside the
    corpus still encodes, byte by byte.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    word = Tokenizer(models.BPE())
    word.normalizer = normalizers.NFC()
    word.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    word.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1 << 20,  # never reached: merging stops when every word is one token
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    word.train_from_iterator(texts, trainer=trainer)
    return word, None


def build_tiny_model(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    tokenizer: Literal["bpe", "word"] = "bpe",
    corpus: str = "steps",
    architecture: dict[str, Any] | None = None,
) -> Path:
    """Write a tiny random Qwen2 causal LM and its tokenizer to `out_dir`.

    Args:
        seed, vocab_size, tokenizer, corpus: as `TinyModelConfig`'s fields.
        architecture: Qwen2 config entries replacing those of `TINY_CONFIG`.

    The same seed gives the same weights and tokenizer. The folder is written
    in a temporary sibling and renamed into place, so an interrupted build
    leaves nothing half-written.

    Returns:
        The output folder.
    """
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    if tokenizer not in TOKENIZERS:
        raise UserError(f"tiny model tokenizer {tokenizer!r}; allowed: {', '.join(TOKENIZERS)}")
    unknown = sorted(set(architecture or {}) - set(TINY_CONFIG))
    if unknown:
        raise UserError(
            f"tiny model architecture: unknown keys {unknown}; allowed: {', '.join(TINY_CONFIG)}"
        )
    if vocab_size < MIN_VOCAB:
        raise UserError(
            f"vocab_size must be >= {MIN_VOCAB} (the 256 byte symbols of the "
            f"byte-level BPE and the end-of-text token), got {vocab_size}"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; choose a new --out")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)

    texts = _texts(corpus)
    backend, unk = _bpe(texts, vocab_size) if tokenizer == "bpe" else _word(texts)
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=EOS, bos_token=None, unk_token=unk
    )
    # Step tokens are ordinary added tokens: kept when decoding, so stop strings match.
    hf_tokenizer.add_tokens(list(STEP_TOKENS), special_tokens=False)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(hf_tokenizer),
        bos_token_id=hf_tokenizer.eos_token_id,
        eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
        torch_dtype="float32",
        **{**TINY_CONFIG, **(architecture or {})},
    )
    model = Qwen2ForCausalLM(config)

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        hf_tokenizer.save_pretrained(tmp)
        (tmp / "rstar_tiny.json").write_text(
            json.dumps(
                {
                    "seed": seed,
                    "vocab_size": vocab_size,
                    "tokenizer": tokenizer,
                    "corpus": corpus,
                    "architecture": architecture or {},
                }
            )
        )
    return out


@dataclass
class TinyModelConfig:
    """The settings of `rstar-pl tiny-model` (`build_tiny_model`'s arguments)."""

    out: str
    """Folder to create (new or empty)."""
    seed: int = 0
    """Seed of the weights."""
    vocab_size: int = 1024
    """BPE vocabulary before the step tokens, >= 257 (the word tokenizer's size is that of
    its corpus)."""
    tokenizer: Literal["bpe", "word"] = "bpe"
    """bpe, or word: one token per word of the corpus."""
    corpus: Literal["steps", "wordproblems"] = "steps"
    """steps (step-format examples), or wordproblems: those and every word of the synthetic
    domain."""


def main(argv: list[str]) -> int:
    from rstar_pl.cli import config_parser, parse_command_line

    parser = config_parser(
        TinyModelConfig,
        prog="rstar-pl tiny-model",
        description="Build a tiny random Qwen2 model and tokenizer (no downloads).",
    )
    config = TinyModelConfig(**vars(parse_command_line(parser, argv)))
    out = build_tiny_model(
        config.out,
        seed=config.seed,
        vocab_size=config.vocab_size,
        tokenizer=config.tokenizer,
        corpus=config.corpus,
    )
    print(f"tiny model written to {out}")
    return 0
