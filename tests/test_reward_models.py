"""The reward-model ablation: `PPMModule(loss=pairwise | q_regression | outcome)`.

Hand-worked losses, then each variant trained through its config (`configs/ppm/*.yaml` over
round 2 and the tiny override, the PPM stage alone) on a few texts, exported, and scored by
`PPMScorer` the way search scores: the trained model must order the texts as its targets do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from datamodules.values import ValueDataModule
from modules.losses import outcome_loss, q_regression_loss
from modules.ppm import PPMModule
from rstar_pl.data.records import RecordError, read_values
from rstar_pl.steps import build_prompt

ROOT = Path(__file__).resolve().parents[1]
ROUND2, TINY = ROOT / "configs" / "round2.yaml", ROOT / "configs" / "tiny.yaml"


def test_q_regression_loss_by_hand():
    """values 0.5, -0.5 against Q 1.0, 0.0: ((0.5)^2 + (0.5)^2) / 2 = 0.25; d/dv = (v - q)
    * 2 / 2 = -0.5 and -0.5."""
    values = torch.tensor([0.5, -0.5], requires_grad=True)
    loss = q_regression_loss(values, torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert values.grad.tolist() == pytest.approx([-0.5, -0.5])


def test_outcome_loss_by_hand():
    """values 0.6 (right answer) and -0.2 (wrong): p = (v + 1)/2 = 0.8 and 0.4;
    BCE = -(log 0.8 + log(1 - 0.4)) / 2 = (0.2231436 + 0.5108256) / 2 = 0.3669846."""
    loss = outcome_loss(torch.tensor([0.6, -0.2]), torch.tensor([1.0, -1.0]))
    assert loss.item() == pytest.approx((-math.log(0.8) - math.log(0.6)) / 2, abs=1e-6)
    assert loss.item() == pytest.approx(0.3669846, abs=1e-6)
    assert math.isfinite(outcome_loss(torch.tensor([1.0]), torch.tensor([-1.0])).item())
    with pytest.raises(ValueError, match="equal length"):
        outcome_loss(torch.zeros(2), torch.zeros(3))


def test_a_loss_and_batch_that_do_not_match_are_named(tiny_model_dir):
    module = PPMModule(str(tiny_model_dir), loss="q_regression")
    pair_batch = {
        "input_ids": torch.ones(2, 3, dtype=torch.long),
        "attention_mask": torch.ones(2, 3, dtype=torch.long),
    }
    with pytest.raises(ValueError, match="no 'target'.*ValueDataModule"):
        module._step(pair_batch, "train")
    with pytest.raises(
        ValueError, match="model.loss is 'hinge'; allowed: pairwise, q_regression, outcome"
    ):
        PPMModule(str(tiny_model_dir), loss="hinge")


def test_value_records_are_checked(tmp_path):
    path = tmp_path / "step_values.jsonl"
    path.write_text(
        json.dumps({"problem_id": "a", "prompt": "p", "completion": "c", "target": 1.5}) + "\n"
    )
    with pytest.raises(
        RecordError,
        match=r"step_values.jsonl:1: key 'target' is 1.5; "
        r"expected a value in \[-1, 1\]",
    ):
        read_values(path)
    path.write_text(json.dumps({"problem_id": "a", "prompt": "p", "target": 0.5}) + "\n")
    with pytest.raises(RecordError, match="missing key 'completion'"):
        read_values(path)


# --- each variant trains through its config and scores ----------------------------------------

QUESTIONS = ["What is 2 + 3?", "What is 4 * 5?", "What is 9 - 7?", "What is 8 / 2?"]
GOOD = "<code>\n# Step 1: compute\nx = {}\n<end_of_step>"
BAD = "<code>\n# Step 1: compute\nx = undefined_thing + 1\n<end_of_step>"
EXPR = ["2 + 3", "4 * 5", "9 - 7", "8 // 2"]


def _write_data(folder: Path) -> Path:
    """Per question one good and one bad first step: pairs (good over bad), Q-labelled steps
    (+0.8 / -0.8) and outcomes (+1 / -1) of the same texts."""
    folder.mkdir()
    pairs, steps, outcomes = [], [], []
    for i, (q, e) in enumerate(zip(QUESTIONS, EXPR)):
        prompt, good = build_prompt(q), GOOD.format(e)
        pairs.append(
            {
                "problem_id": str(i),
                "prompt": prompt,
                "chosen": good,
                "rejected": BAD,
                "chosen_q": 0.8,
                "rejected_q": -0.8,
                "kind": "step",
            }
        )
        for text, q_value, right in ((good, 0.8, 1.0), (BAD, -0.8, -1.0)):
            steps.append(
                {
                    "problem_id": str(i),
                    "prompt": prompt,
                    "completion": text,
                    "target": q_value,
                    "kind": "q",
                }
            )
            outcomes.append(
                {
                    "problem_id": str(i),
                    "prompt": prompt,
                    "completion": text,
                    "target": right,
                    "kind": "outcome",
                }
            )
    for name, rows in (("pairs", pairs), ("step_values", steps), ("outcomes", outcomes)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("variant", ["pairwise", "q_regression", "outcome"])
def test_each_reward_model_trains_through_its_config_and_scores(
    variant, tiny_model_dir, tmp_path, one_torch_thread
):
    from rstar_pl.backends.ppm import PPMScorer
    from rstar_pl.train import main

    data = _write_data(tmp_path / "data")
    run = tmp_path / "run"
    argv = [
        "--config",
        str(ROUND2),
        "--config",
        str(TINY),
        "--config",
        str(ROOT / "configs" / "ppm" / f"{variant}.yaml"),
        "--stage",
        "ppm",
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={data}",
        f"--ppm.model.init_args.model={tiny_model_dir}",
        "--ppm.trainer.max_steps=40",
        "--ppm.trainer.max_epochs=40",
        "--ppm.data.init_args.val_size=0",
        "--ppm.data.init_args.batch_size=4",
        "--ppm.trainer.val_check_interval=1",
        "--launch",
        "inprocess",
    ]
    assert main("fit", argv) == 0
    saved = (run / "config" / "ppm.yaml").read_text()
    assert f"loss: {variant}" in saved
    scorer = PPMScorer.from_path(run / "ppm", device="cpu")
    good = scorer.score([build_prompt(q) + GOOD.format(e) for q, e in zip(QUESTIONS, EXPR)])
    bad = scorer.score([build_prompt(q) + BAD for q in QUESTIONS])
    assert all(g > b for g, b in zip(good, bad)), (good, bad)
    if variant != "pairwise":  # the pointwise models also learn the targets' signs
        assert all(g > 0 for g in good) and all(b < 0 for b in bad), (good, bad)


def test_value_datamodule_batches_texts_with_targets(tiny_model_dir, tmp_path):
    data = _write_data(tmp_path / "data")
    dm = ValueDataModule(str(tiny_model_dir), [str(data / "outcomes.jsonl")], batch_size=3)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 3 and batch["target"].shape == (3,)
    assert set(batch["target"].tolist()) <= {1.0, -1.0}
