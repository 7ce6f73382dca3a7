"""The policy and PPM modules, the value head, exports and loaders, on a tiny model."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from datamodules import PairDataModule
from modules import PolicyModule, PPMModule, ValueHeadModel
from modules.export import export_policy, export_ppm, load_policy, load_ppm
from modules.tokenizer import load_tokenizer, pad_values
from modules.value_model import HEAD_CONFIG, HEAD_WEIGHTS, last_token_index
from rstar_pl.backends.base import Scorer
from rstar_pl.backends.ppm import PPMScorer

TEXTS = [
    "<|user|>:\nWhat is 3 times 4?\n<|assistant|>: <code>\nx = 3 * 4\n<end_of_step>",
    "<|user|>:\nWhat is 2 plus 2?\n<|assistant|>: <code>\nx = 2 + 2\n<end_of_step>\nprint(x)\n<end_of_code>",
    "short<end_of_step>",
]


def _pairs_file(tmp_path, n=12):
    rows = [
        {
            "problem_id": f"p{i}",
            "prompt": f"<|user|>:\nWhat is {i} times 3?\n<|assistant|>: <code>\n",
            "chosen": f"x = {i} * 3\n<end_of_step>",
            "rejected": f"x = {i} + 3\n<end_of_step>",
            "chosen_q": 1.0,
            "rejected_q": -1.0,
            "kind": "step",
        }
        for i in range(n)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_last_token_index_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4]


def _random_head(model: ValueHeadModel) -> ValueHeadModel:
    """The head starts at zero (all values 0); give it weights so values differ."""
    torch.manual_seed(0)
    torch.nn.init.normal_(model.value_head.weight, std=0.1)
    return model


def test_value_head_starts_at_zero(tiny_model_dir):
    model = ValueHeadModel.from_backbone(str(tiny_model_dir))
    ids = torch.tensor([[5, 6, 7]])
    assert model(ids, torch.ones_like(ids)).tolist() == [0.0]


def test_values_do_not_depend_on_padding_side(tiny_model_dir):
    model = _random_head(ValueHeadModel.from_backbone(str(tiny_model_dir))).eval()
    tok = load_tokenizer(str(tiny_model_dir))
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    with torch.no_grad():
        alone = torch.cat(
            [model(torch.tensor([i]), torch.ones(1, len(i), dtype=torch.long)) for i in ids]
        )
        left = model(**pad_values(ids, tok.pad_token_id, "left"))
        right = model(**pad_values(ids, tok.pad_token_id, "right"))
    torch.testing.assert_close(left, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=1e-4)
    assert alone.abs().max() < 1 and alone.std() > 0


def test_scorer_cuts_long_texts_from_the_left(tiny_model_dir):
    model = _random_head(ValueHeadModel.from_backbone(str(tiny_model_dir))).eval()
    tok = load_tokenizer(str(tiny_model_dir))
    scorer = PPMScorer(model, tok, max_length=8, batch_size=2)
    assert isinstance(scorer, Scorer)
    values = scorer.score(TEXTS)
    assert len(values) == 3 and all(-1 <= v <= 1 for v in values)
    ids = tok(TEXTS[1], add_special_tokens=False)["input_ids"]
    assert len(ids) > 8
    tail = torch.tensor([ids[-8:]])
    with torch.no_grad():
        expected = model(tail, torch.ones_like(tail)).item()
    assert values[1] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="text 0 is empty"):
        scorer.score([""])


def test_ppm_metrics_match_the_values(tiny_model_dir, tmp_path):
    """val/pair_accuracy is the share of pairs whose chosen value exceeds the rejected one,
    val/margin their mean difference, computed here from the module's own outputs."""
    L.seed_everything(0)
    dm = PairDataModule(str(tiny_model_dir), [_pairs_file(tmp_path)], val_size=6, batch_size=4)
    module = PPMModule(str(tiny_model_dir), vocab_size=dm.vocab_size)
    _random_head(module.model)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.validate(module, datamodule=dm, verbose=False)
    margins = []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            values = module(batch["input_ids"], batch["attention_mask"])
            half = values.size(0) // 2
            margins.append(values[:half] - values[half:])
    margins = torch.cat(margins)
    assert trainer.callback_metrics["val/pair_accuracy"].item() == pytest.approx(
        (margins > 0).float().mean().item()
    )
    assert trainer.callback_metrics["val/margin"].item() == pytest.approx(
        margins.mean().item(), abs=1e-6
    )


def test_ppm_learns_to_rank_and_exports(tiny_model_dir, tmp_path):
    L.seed_everything(0)
    dm = PairDataModule(str(tiny_model_dir), [_pairs_file(tmp_path)], batch_size=4)
    module = PPMModule(str(tiny_model_dir), vocab_size=dm.vocab_size, lr=1e-3, schedule="constant")
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=15,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    dm.setup()
    batch = next(
        iter(torch.utils.data.DataLoader(dm._train, batch_size=12, collate_fn=dm._collate()))
    )
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        before = module(**inputs)
    trainer.fit(module, datamodule=dm)
    module.eval()
    with torch.no_grad():
        after = module(**inputs)
    margin_before = (before[:12] - before[12:]).mean()
    margin_after = (after[:12] - after[12:]).mean()
    assert margin_before == 0  # the head starts at zero
    assert margin_after > 0.5
    assert (after[:12] > after[12:]).all()

    # Export, then the three ways of loading give the module's values.
    out = export_ppm(module.model, dm.tokenizer, tmp_path / "ppm")
    assert (out / HEAD_WEIGHTS).is_file() and json.loads((out / HEAD_CONFIG).read_text())[
        "activation"
    ] == "tanh"
    texts = [
        p + c
        for p, c in [
            ("<|user|>:\nWhat is 1 times 3?\n<|assistant|>: <code>\n", "x = 1 * 3\n<end_of_step>")
        ]
    ]
    scorer = PPMScorer.from_path(out)
    direct = PPMScorer(module.model, dm.tokenizer).score(texts)
    assert scorer.score(texts) == pytest.approx(direct, abs=1e-5)
    ckpt = tmp_path / "ppm.ckpt"
    trainer.save_checkpoint(ckpt)
    from_ckpt, _ = load_ppm(ckpt)
    assert PPMScorer(from_ckpt, dm.tokenizer).score(texts) == pytest.approx(direct, abs=1e-5)

    # Plain transformers code, as documented in modules/export.py.
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    backbone = AutoModel.from_pretrained(out).eval()
    head = load_file(str(out / HEAD_WEIGHTS))
    ids = AutoTokenizer.from_pretrained(out)(texts[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        h = backbone(ids).last_hidden_state[:, -1]
    value = torch.tanh(h @ head["weight"].T + head["bias"]).item()
    assert value == pytest.approx(direct[0], abs=1e-5)


def test_policy_grows_embeddings_and_round_trips(tiny_model_dir, tmp_path):
    tok = load_tokenizer(str(tiny_model_dir))
    base = len(tok)
    module = PolicyModule(str(tiny_model_dir), vocab_size=base + 3, gradient_checkpointing=True)
    assert module.model.get_input_embeddings().num_embeddings == base + 3
    assert module.model.is_gradient_checkpointing
    module = PolicyModule(str(tiny_model_dir), vocab_size=base)
    torch.manual_seed(1)
    with torch.no_grad():  # make the weights differ from the folder's
        module.model.lm_head.weight.add_(0.01 * torch.randn_like(module.model.lm_head.weight))
    ids = torch.tensor([tok("<code>\nx = 1\n<end_of_step>", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = module.model(ids).logits
    out = export_policy(module.model, tok, tmp_path / "policy")
    model, tok2 = load_policy(out)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected)
    assert tok2.get_vocab() == tok.get_vocab()
    trainer = L.Trainer(accelerator="cpu", logger=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "policy.ckpt")
    model, _ = load_policy(tmp_path / "policy.ckpt")
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected)


def test_load_ppm_explains_a_wrong_folder(tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="not a PPM export"):
        load_ppm(tiny_model_dir)
