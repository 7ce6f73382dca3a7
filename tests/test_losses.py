"""Hand-worked checks of the two training losses and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from modules.losses import IGNORE_INDEX, pairwise_preference_loss, response_lm_loss
from modules.optim import lr_factor


def test_pairwise_loss_matches_hand_computation():
    """Two pairs with margins 1 and 0:

    log sigmoid(1) = -log(1 + e^-1) = -0.3132617
    log sigmoid(0) = -log 2         = -0.6931472
    loss = (0.3132617 + 0.6931472) / 2 = 0.5032044
    """
    chosen = torch.tensor([0.5, 0.2])
    rejected = torch.tensor([-0.5, 0.2])
    loss, margins = pairwise_preference_loss(chosen, rejected)
    assert margins.tolist() == pytest.approx([1.0, 0.0])
    assert loss.item() == pytest.approx(0.5032044, abs=1e-6)


def test_pairwise_loss_is_the_mean_over_the_paper_2x2_pairs():
    """Paper: L = -1/(2*2) * sum over 2 positives x 2 negatives of log sigmoid(r_pos - r_neg).

    Positives 0.9, 0.5; negatives -0.3, 0.1 give margins 1.2, 0.8, 0.8, 0.4:
    -log sigmoid(m) = log(1 + e^-m) = 0.2632825, 0.3711007, 0.3711007, 0.5130153
    mean = 1.5184991 / 4 = 0.3796248
    """
    pos, neg = torch.tensor([0.9, 0.5]), torch.tensor([-0.3, 0.1])
    chosen = pos.repeat_interleave(2)  # 0.9 0.9 0.5 0.5
    rejected = neg.repeat(2)  # -0.3 0.1 -0.3 0.1
    loss, margins = pairwise_preference_loss(chosen, rejected)
    assert margins.tolist() == pytest.approx([1.2, 0.8, 0.8, 0.4])
    assert loss.item() == pytest.approx(0.3796248, abs=1e-6)


def test_pairwise_loss_weights_each_step_once_eq4():
    """Eq. 4: each step (shared prompt) has total weight 1, each of its pairs
    1/#pairs. A batch with one 2x2 step (the four pairs above, mean 0.3796248)
    and one 1x1 step (margin 0: -log sigmoid(0) = ln 2 = 0.6931472):

    loss = (0.3796248 + 0.6931472) / 2 = 0.5363860
    (a plain mean over the 5 rows would give (1.5184991 + 0.6931472) / 5 = 0.4423293)
    """
    chosen = torch.tensor([0.9, 0.9, 0.5, 0.5, 0.2])
    rejected = torch.tensor([-0.3, 0.1, -0.3, 0.1, 0.2])
    weights = torch.tensor([0.25, 0.25, 0.25, 0.25, 1.0])
    loss, margins = pairwise_preference_loss(chosen, rejected, weights)
    assert margins.tolist() == pytest.approx([1.2, 0.8, 0.8, 0.4, 0.0])
    assert loss.item() == pytest.approx(0.5363860, abs=1e-6)
    assert pairwise_preference_loss(chosen, rejected)[0].item() == pytest.approx(
        0.4423293, abs=1e-6
    )
    with pytest.raises(ValueError, match="weights"):
        pairwise_preference_loss(chosen, rejected, torch.ones(4))


def test_pairwise_loss_gradient_pushes_chosen_up_and_rejected_down():
    """d/dc of -log sigmoid(c - r) = -(1 - sigmoid(c - r)); at c = r it is -1/2 per pair,
    divided by the 1 pair: -0.5 for chosen, +0.5 for rejected."""
    chosen = torch.tensor([0.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    loss, _ = pairwise_preference_loss(chosen, rejected)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.5)
    assert rejected.grad.item() == pytest.approx(0.5)


def test_pairwise_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal length"):
        pairwise_preference_loss(torch.zeros(3), torch.zeros(2))


def test_response_loss_counts_response_tokens_only():
    """Vocabulary of 2, sequence of 3 tokens, labels [prompt, 0, 1].

    Position 0 (logits [0, 0]) predicts label 0: p = 1/2, loss ln 2.
    Position 1 (logits [ln 3, 0]) predicts label 1: p = 1/(3 + 1), loss ln 4.
    Position 2 predicts nothing (no next token).
    Mean over the 2 response tokens: (ln 2 + ln 4) / 2 = 1.5 ln 2 = 1.0397208.
    Masking label 1 as prompt leaves ln 4 alone.
    """
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 0, 1]])
    assert response_lm_loss(logits, labels).item() == pytest.approx(1.5 * math.log(2), abs=1e-6)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 1]])
    assert response_lm_loss(logits, labels).item() == pytest.approx(math.log(4), abs=1e-6)


def test_lr_schedules_by_hand():
    """10 steps, 2 of warmup: warmup 1/2, 2/2; linear decay over the 8 remaining steps
    (step 6 is halfway: 0.5); cosine halfway is (1 + cos(pi/2))/2 = 0.5, at a quarter
    (step 4) (1 + cos(pi/4))/2 = 0.8535534."""
    kw = {"total_steps": 10, "warmup_steps": 2}
    assert lr_factor(0, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_factor(1, schedule="linear", **kw) == pytest.approx(1.0)
    assert lr_factor(2, schedule="linear", **kw) == pytest.approx(1.0)
    assert lr_factor(6, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_factor(10, schedule="linear", **kw) == pytest.approx(0.0)
    assert lr_factor(4, schedule="cosine", **kw) == pytest.approx(0.8535534)
    assert lr_factor(6, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_factor(6, schedule="constant", **kw) == 1.0
    assert lr_factor(10, schedule="linear", min_lr_ratio=0.1, **kw) == pytest.approx(0.1)
