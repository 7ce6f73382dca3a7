"""Reading, validating, tokenising, packing and resuming the training data."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules import PairDataModule, RecordError, SFTDataModule, read_pairs, read_sft
from datamodules.packing import collate_packed, collate_padded, pack_lengths
from datamodules.resumable import EpochShuffleSampler, ResumableDataLoader
from modules.losses import IGNORE_INDEX, response_lm_loss
from modules.tokenizer import encode_values, load_tokenizer
from rstar_pl.steps import STEP_TOKENS, build_prompt

RESPONSE = (
    "<code>\n# Step 1: multiply\nx = 3 * 4\n<end_of_step>\n# Now print the final answer\n"
    "print(x)\n<end_of_code>\n<output>12<end_of_output>\n<answer>\\boxed{12}<end_of_answer>"
)


def _sft_line(i: int, **extra) -> dict:
    record = {
        "problem_id": f"p{i}",
        "question": f"What is {i} times 4?",
        "response": RESPONSE,
        "mean_q": 0.5,
        "min_q": 0.1,
    }
    record.update(extra)
    return record


def _write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_official_rstar_files_are_read(data_dir):
    sft = read_sft(data_dir / "rstar_format/sft_example.json")
    raw = json.loads((data_dir / "rstar_format/sft_example.json").read_text())
    assert len(sft) == len(raw) == 8
    assert sft[0].prompt == build_prompt(raw[0]["query"])
    assert sft[0].response == raw[0]["response"]
    pairs = read_pairs(data_dir / "rstar_format/ppm_pairs_example.json")
    raw = json.loads((data_dir / "rstar_format/ppm_pairs_example.json").read_text())
    assert len(pairs) == len(raw)
    assert (pairs[2].prompt, pairs[2].chosen, pairs[2].rejected) == (
        raw[2]["prompt"],
        raw[2]["pos"],
        raw[2]["neg"],
    )


def test_bad_jsonl_record_names_file_line_and_key(tmp_path):
    lines = [
        _sft_line(0),
        _sft_line(1),
        {"problem_id": "p2", "question": "q", "mean_q": 0, "min_q": 0},
    ]
    path = _write_jsonl(tmp_path / "sft.jsonl", lines)
    with pytest.raises(RecordError, match=r"sft\.jsonl:3: missing key 'response'"):
        read_sft(path)
    path = _write_jsonl(tmp_path / "bad.jsonl", [_sft_line(0, mean_q="high")])
    with pytest.raises(
        RecordError, match=r"bad\.jsonl:1: key 'mean_q' is str .*expected int/float"
    ):
        read_sft(path)


def test_bad_json_array_record_names_its_line(tmp_path):
    good = {"prompt": "p", "pos": "a", "neg": "b", "pos_count": 2, "neg_count": 2}
    bad = {"prompt": "p", "pos": "a", "neg": "b", "pos_count": "2", "neg_count": 2}
    text = "[\n" + json.dumps(good) + ",\n" + json.dumps(good) + ",\n" + json.dumps(bad) + "\n]\n"
    path = tmp_path / "pairs.json"
    path.write_text(text)
    # The bad record starts on line 4 (line 1 is "[").
    with pytest.raises(RecordError, match=r"pairs\.json:4: key 'pos_count' is str"):
        read_pairs(path)


def test_empty_training_files_say_so(tiny_model_dir, tmp_path):
    (tmp_path / "sft.jsonl").write_text("")
    (tmp_path / "pairs.jsonl").write_text("\n")
    sft = SFTDataModule(str(tiny_model_dir), [str(tmp_path / "sft.jsonl")], val_size=0)
    with pytest.raises(ValueError, match=r"sft\.jsonl'\]: no SFT records \(empty\)"):
        sft.setup("fit")
    pairs = PairDataModule(str(tiny_model_dir), [str(tmp_path / "pairs.jsonl")], val_size=0)
    with pytest.raises(ValueError, match=r"pairs\.jsonl'\]: no preference pairs \(empty\)"):
        pairs.setup("fit")


def test_a_pair_whose_chosen_is_its_rejected_is_dropped_with_a_warning(tmp_path, caplog):
    def pair(chosen, rejected):
        return {
            "problem_id": "p",
            "prompt": "P",
            "chosen": chosen,
            "rejected": rejected,
            "chosen_q": 1.0,
            "rejected_q": -1.0,
            "kind": "step",
        }

    path = _write_jsonl(
        tmp_path / "pairs.jsonl",
        [pair("a", "b"), pair("same", "same"), pair("c", "d"), pair("x", "x")],
    )
    assert [(p.chosen, p.rejected) for p in read_pairs(path)] == [("a", "b"), ("c", "d")]
    assert (
        f"{path}: dropped 2 pairs whose chosen text equals the rejected one (lines 2, 4)"
        in caplog.text
    )


def test_training_files_that_are_not_utf8_name_the_file(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_bytes(json.dumps(_sft_line(0)).encode() + b"\n\xff\n")
    with pytest.raises(ValueError, match=rf"^{path}:2: not UTF-8 text \(byte 0xff\)"):
        read_sft(path)


def test_sft_labels_mask_the_prompt_and_end_with_eos(tiny_model_dir, tmp_path):
    path = _write_jsonl(tmp_path / "sft.jsonl", [_sft_line(i) for i in range(3)])
    dm = SFTDataModule(str(tiny_model_dir), [path], max_length=512, batch_size=3)
    dm.setup("fit")
    tok = dm.tokenizer
    prompt_ids = tok(build_prompt("What is 0 times 4?"), add_special_tokens=False)["input_ids"]
    response_ids = tok(RESPONSE, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids, labels = next(x for x in dm._train if x[0][: len(prompt_ids)] == prompt_ids)
    assert ids == prompt_ids + response_ids
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + response_ids
    # The step tokens are single tokens of the tokenizer.
    for token in STEP_TOKENS:
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1
    assert dm.vocab_size == len(tok)


def test_truncation_policy(tiny_model_dir, tmp_path):
    path = _write_jsonl(tmp_path / "sft.jsonl", [_sft_line(0)])
    dm = SFTDataModule(str(tiny_model_dir), [path], max_length=10_000)
    dm.setup()
    full = len(dm._train[0][0])
    prompt_len = dm._train[0][1].count(IGNORE_INDEX)
    dropped = SFTDataModule(str(tiny_model_dir), [path], max_length=full - 1, truncation="drop")
    with pytest.raises(ValueError, match="no SFT example fits"):
        dropped.setup()
    cut = SFTDataModule(str(tiny_model_dir), [path], max_length=full - 5, truncation="right")
    cut.setup()
    assert cut._train[0][0] == dm._train[0][0][: full - 5]
    prompt_only = SFTDataModule(
        str(tiny_model_dir), [path], max_length=prompt_len, truncation="right"
    )
    with pytest.raises(ValueError, match="no SFT example fits"):
        prompt_only.setup()


def test_pack_lengths_first_fit_decreasing():
    """Lengths 5, 3, 4, 2 into bins of 7, largest first: 5 opens bin A (room 2), 4 opens
    bin B (room 3), 3 fills B, 2 fills A: bins {0, 3} and {1, 2}."""
    assert pack_lengths([5, 3, 4, 2], 7) == [[0, 3], [1, 2]]
    with pytest.raises(ValueError, match="example 0 has 9 tokens"):
        pack_lengths([9], 7)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_logits_equal_unpacked(tiny_model_dir, attn):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    vocab = model.config.vocab_size
    a = torch.randint(0, vocab, (7,)).tolist()
    b = torch.randint(0, vocab, (5,)).tolist()
    c = torch.randint(0, vocab, (9,)).tolist()
    examples = [
        (a, [IGNORE_INDEX] * 3 + a[3:]),
        (b, [IGNORE_INDEX] * 2 + b[2:]),
        (c, [IGNORE_INDEX] + c[1:]),
    ]
    packed = collate_packed([examples[:2], examples[2:]], pad_id=0)
    assert packed["input_ids"].shape == (2, 12)
    assert packed["position_ids"][0].tolist() == list(range(7)) + list(range(5))
    with torch.no_grad():
        # use_cache=False as in PolicyModule: transformers only detects packing without a cache.
        out = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
        alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids, _ in examples]
    torch.testing.assert_close(out[0, :7], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[0, 7:12], alone[1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1, :9], alone[2], atol=1e-5, rtol=1e-4)
    # The token-mean loss of the packed batch equals that of the padded batch.
    padded = collate_padded(examples, pad_id=0)
    with torch.no_grad():
        padded_logits = model(
            input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]
        ).logits
    torch.testing.assert_close(
        response_lm_loss(out, packed["labels"]),
        response_lm_loss(padded_logits, padded["labels"]),
        atol=1e-5,
        rtol=1e-5,
    )


def test_sft_packing_datamodule_fills_rows(tiny_model_dir, tmp_path):
    path = _write_jsonl(tmp_path / "sft.jsonl", [_sft_line(i) for i in range(8)])
    plain = SFTDataModule(str(tiny_model_dir), [path], max_length=400, batch_size=2)
    plain.setup()
    packed = SFTDataModule(str(tiny_model_dir), [path], max_length=400, batch_size=2, packing=True)
    packed.setup()
    length = len(plain._train[0][0])
    per_row = 400 // length
    assert len(packed._train) == -(-8 // per_row)
    batch = next(iter(packed.train_dataloader()))
    assert batch["input_ids"].shape[1] <= 400 and "position_ids" in batch


def test_pairs_batch_is_chosen_then_rejected_and_cut_from_the_left(tiny_model_dir, tmp_path):
    rows = [
        {
            "problem_id": "p",
            "prompt": "Question " * 30,
            "chosen": f"good step {i}<end_of_step>",
            "rejected": f"bad step {i}<end_of_step>",
            "chosen_q": 1.0,
            "rejected_q": -1.0,
            "kind": "step",
        }
        for i in range(3)
    ]
    path = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    dm = PairDataModule(str(tiny_model_dir), [path], max_length=16, batch_size=3)
    dm.setup()
    loader = torch.utils.data.DataLoader(dm._train, batch_size=3, collate_fn=dm._collate())
    batch = next(iter(loader))
    assert batch["input_ids"].shape[0] == 6
    tok = dm.tokenizer
    for i in range(3):
        chosen = tok.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()])
        rejected = tok.decode(batch["input_ids"][i + 3][batch["attention_mask"][i + 3].bool()])
        assert chosen.endswith(f"good step {i}<end_of_step>")
        assert rejected.endswith(f"bad step {i}<end_of_step>")
    ids = encode_values(tok, [rows[0]["prompt"] + rows[0]["chosen"]], 16)[0]
    full = tok(rows[0]["prompt"] + rows[0]["chosen"], add_special_tokens=False)["input_ids"]
    assert len(full) > 16 and ids == full[-16:]


def test_load_tokenizer_adds_missing_step_tokens(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        ["plain text only"],
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>").save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert all(t in tok.get_vocab() for t in STEP_TOKENS)
    assert tok.pad_token == "<eos>"
    assert (
        tok.decode(tok("<end_of_step>", add_special_tokens=False)["input_ids"]) == "<end_of_step>"
    )


def test_resumable_loader_continues_the_same_order():
    data = list(range(20))

    def loader():
        return ResumableDataLoader(data, batch_size=3, sampler=EpochShuffleSampler(data, seed=7))

    full = [b.tolist() for b in loader()]
    first = loader()
    it = iter(first)
    seen = [next(it).tolist() for _ in range(3)]
    state = first.state_dict()
    assert state == {"batches_served": 3}
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in resumed]
    assert seen + rest == full
    assert sorted(x for b in full for x in b) == data
    # Another epoch is another permutation; the same epoch is the same one.
    sampler = EpochShuffleSampler(data, seed=7)
    sampler.set_epoch(1)
    assert list(sampler) != [x for b in full for x in b]


def test_hold_out_keeps_at_least_one_training_record(tiny_model_dir, tmp_path):
    """Three records and val_size 5: two are held out, one trains (no empty training set)."""
    path = _write_jsonl(tmp_path / "sft.jsonl", [_sft_line(i) for i in range(3)])
    dm = SFTDataModule(str(tiny_model_dir), [path], val_size=5)
    dm.setup()
    assert (len(dm._train), len(dm._val)) == (1, 2)


def _pair_line(problem: str, prompt: str, i: int, kind: str = "step") -> dict:
    return {
        "problem_id": problem,
        "prompt": prompt,
        "chosen": f"good {i}",
        "rejected": f"bad {i}",
        "chosen_q": 1.0,
        "rejected_q": -1.0,
        "kind": kind,
    }


def test_pair_weights_give_each_step_total_weight_one(tmp_path, data_dir):
    """Eq. 4: a step's pairs share its weight. Extractor pairs are grouped by
    (problem, kind, prompt): p0's root step has 4 pairs (1/4 each), its second
    step 1 pair; p0's final pairs (same prompt as the root step, other kind) 2.
    Official records carry pos_count x neg_count."""
    rows = [_pair_line("p0", "Q0", i) for i in range(4)] + [_pair_line("p0", "Q0 s1", 4)]
    rows += [_pair_line("p0", "Q0", i, kind="final") for i in (5, 6)]
    pairs = read_pairs(_write_jsonl(tmp_path / "pairs.jsonl", rows))
    assert [p.weight for p in pairs] == [0.25] * 4 + [1.0, 0.5, 0.5]
    official = read_pairs(data_dir / "rstar_format/ppm_pairs_example.json")
    raw = json.loads((data_dir / "rstar_format/ppm_pairs_example.json").read_text())
    assert [p.weight for p in official] == [1 / (r["pos_count"] * r["neg_count"]) for r in raw]


def test_pair_batches_carry_the_weights(tiny_model_dir, tmp_path):
    rows = [_pair_line("p0", "Q0", i) for i in range(2)] + [_pair_line("p1", "Q1", 2)]
    dm = PairDataModule(
        str(tiny_model_dir), [_write_jsonl(tmp_path / "pairs.jsonl", rows)], batch_size=3
    )
    dm.setup()
    loader = torch.utils.data.DataLoader(dm._train, batch_size=3, collate_fn=dm._collate())
    assert next(iter(loader))["pair_weight"].tolist() == [0.5, 0.5, 1.0]


def test_official_pair_counts_must_be_positive(tmp_path):
    bad = {"prompt": "p", "pos": "a", "neg": "b", "pos_count": 0, "neg_count": 2}
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([bad]))
    with pytest.raises(RecordError, match=r"pairs\.json:1: key 'pos_count' is 0; expected"):
        read_pairs(path)


@pytest.mark.parametrize("seed", range(6))
def test_validation_split_is_by_problem(tiny_model_dir, tmp_path, seed):
    """Pairs (and SFT records) of one problem share prefixes: a problem is all in
    training or all in validation, never both."""
    rows = [
        _pair_line(f"p{k}", f"Q{k} {j}", j) for k, n in enumerate((3, 2, 1, 4)) for j in range(n)
    ]
    dm = PairDataModule(
        str(tiny_model_dir), [_write_jsonl(tmp_path / "pairs.jsonl", rows)], val_size=3, seed=seed
    )
    dm.setup()
    tok = dm.tokenizer

    def problems(part):
        return {tok.decode(c).split(" ")[0] for c, _, _ in part}

    assert dm._val and not problems(dm._train) & problems(dm._val)
    assert len(dm._val) >= 3
    sft = [_sft_line(k) for k in range(4) for _ in range(2)]
    for k, record in enumerate(sft):
        record["response"] = RESPONSE + f" #{k}"
    sdm = SFTDataModule(
        str(tiny_model_dir), [_write_jsonl(tmp_path / "sft.jsonl", sft)], val_size=3, seed=seed
    )
    sdm.setup()
    held = {e.prompt for e in sdm.val_examples}
    assert len(held) == 2 and len(sdm.val_examples) == 4  # two whole problems of 2 records
