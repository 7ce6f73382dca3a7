"""benchmarks/eval_smollm2.py's padded copy: lm-eval's batched generation made to match the prompts alone.

lm-eval's `hf` model left-pads a batch and calls `generate` with no attention mask; when the
tokenizer's pad is its EOS (SmolLM2, the tiny test model) transformers cannot infer one and a
padded row attends to its padding. `_padded_copy` gives the model a tokenizer that pads with
another token, so the mask is inferred. The test calls `generate` as lm-eval does, on the tiny
model, and compares the first step's logits of the shorter prompt with those of the prompt alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "<|user|>:\nWhat is 1 + 1?\n<|assistant|>:",
    "<|user|>:\nTom has 3 apples and buys 4 more. Then he gives 2 away. How many?\n<|assistant|>:",
]


def _first_logits(folder, prompts):
    """First generated step's logits per prompt, `generate` called as lm-eval calls it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            max_new_tokens=1,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return out.logits[0]


@pytest.fixture
def eval_smollm2(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import eval_smollm2

    return eval_smollm2


def test_padded_copy_batches_as_each_prompt_alone(
    tiny_model_dir, tmp_path, eval_smollm2, one_torch_thread
):
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert own.pad_token_id == own.eos_token_id  # the case lm-eval gets wrong
    short = PROMPTS[0]
    assert len(own(short)["input_ids"]) < len(own(PROMPTS[1])["input_ids"])

    alone = _first_logits(tiny_model_dir, [short])[0]
    as_is = _first_logits(tiny_model_dir, PROMPTS)[0]
    # the setting reproduces the fault: the padded row's logits move
    assert not torch.allclose(as_is, alone, atol=1e-4)

    copy = eval_smollm2._padded_copy(tiny_model_dir, "<end_of_step>", tmp_path / "padded")
    tokenizer = AutoTokenizer.from_pretrained(copy)
    assert tokenizer.pad_token == "<end_of_step>" and tokenizer.eos_token == own.eos_token
    assert tokenizer.get_vocab() == own.get_vocab()
    weights = sorted(p.name for p in copy.glob("*.safetensors"))
    assert weights and all((copy / w).resolve() == (tiny_model_dir / w).resolve() for w in weights)
    padded = _first_logits(copy, PROMPTS)[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)

    # a second call reuses the copy; EOS or a token the model lacks is refused
    assert eval_smollm2._padded_copy(tiny_model_dir, "<end_of_step>", copy) == copy
    for bad in (own.eos_token, "<no such token>"):
        with pytest.raises(SystemExit, match="--lm-eval-pad"):
            eval_smollm2._padded_copy(tiny_model_dir, bad, tmp_path / "bad")
