"""The scripted backend: real step text, choices fixed by (seed, prompt, sample)."""

from __future__ import annotations

from collections import Counter

import pytest

from rstar_pl.backends.scripted import (
    ERROR_MARK,
    VARIANT_MARK,
    Script,
    ScriptedBackend,
    ScriptedScorer,
    ScriptError,
    correct_step_text,
)
from rstar_pl.steps import build_prompt, format_output, parse_step

SCRIPT = Script(
    "What is 6 times 7?", ("# Step 1: the factors\na = 6\nb = 7", "# answer\nprint(a * b)")
)
OTHER = Script("What is 1 + 2?", ("x = 1 + 2", "print(x)"))


def test_completions_are_batch_independent_and_seeded():
    backend = ScriptedBackend([SCRIPT, OTHER], p_wrong=0.4, p_error=0.2, seed=1)
    p1, p2 = build_prompt(SCRIPT.question), build_prompt(OTHER.question)
    both = backend.generate([p1, p2], n=6, seed=[11, 12], temperature=1.0)
    assert backend.generate([p1], n=6, seed=[11], temperature=1.0) == [both[0]]
    assert backend.generate([p2, p1], n=6, seed=[12, 11], temperature=1.0) == [both[1], both[0]]
    assert backend.generate([p1], n=6, seed=[13], temperature=1.0) != [both[0]]


def test_step_mix_follows_the_probabilities_and_text_is_step_format():
    backend = ScriptedBackend([SCRIPT], p_wrong=0.3, p_error=0.1, seed=0)
    prompt = build_prompt(SCRIPT.question)
    kinds = Counter()
    for seed in range(300):
        for comp in backend.generate([prompt], n=4, seed=[seed], temperature=1.0)[0]:
            step = parse_step(comp.text, comp.stop)
            assert step.kind == "step" and comp.text.startswith("<code>\n")
            if ERROR_MARK in comp.text:
                kinds["error"] += 1
            elif step.text == correct_step_text(SCRIPT, 0):
                kinds["correct"] += 1
            else:
                kinds["wrong"] += 1
    # 1200 samples: expected 720 / 360 / 120, within about 4 standard deviations
    assert abs(kinds["correct"] - 720) < 70
    assert abs(kinds["wrong"] - 360) < 65
    assert abs(kinds["error"] - 120) < 45


def test_answer_step_copies_the_program_output():
    backend = ScriptedBackend([SCRIPT], p_wrong=0.0, p_error=0.0)
    prompt = build_prompt(SCRIPT.question) + correct_step_text(SCRIPT, 0)
    [[code_end]] = backend.generate([prompt], n=1)
    assert code_end.full_text == correct_step_text(SCRIPT, 1)
    [[answer]] = backend.generate([prompt + code_end.full_text + format_output("43")], n=1)
    assert parse_step(answer.text, answer.stop).answer == "43"


def test_bad_scripts_and_unknown_questions_are_reported():
    with pytest.raises(ScriptError, match="must end with print"):
        Script("q?", ("x = 1",))
    with pytest.raises(ScriptError, match="no script for question"):
        ScriptedBackend([SCRIPT]).generate([build_prompt("Unknown?")], n=1)


def test_round1_few_shot_prompt_is_followed_too():
    backend = ScriptedBackend([SCRIPT], p_wrong=0.0, p_error=0.0)
    prompt = build_prompt(SCRIPT.question, few_shot=True)  # two worked examples first
    [[first]] = backend.generate([prompt], n=1)
    assert first.full_text == correct_step_text(SCRIPT, 0)


def test_a_correct_step_has_a_second_way_of_writing_it():
    backend = ScriptedBackend([SCRIPT], p_wrong=0.0, p_error=0.0, p_variant=0.5, seed=0)
    prompt = build_prompt(SCRIPT.question)
    texts = Counter(
        c.full_text for c in backend.generate([prompt], n=40, seed=[3], temperature=1.0)[0]
    )
    plain, other = correct_step_text(SCRIPT, 0), correct_step_text(SCRIPT, 0, variant=True)
    assert set(texts) == {plain, other} and 8 < texts[other] < 32
    assert other == plain.replace("<code>\n", f"<code>\n{VARIANT_MARK}\n", 1)
    # the next step follows either way, and the stand-in PPM counts both as correct
    for first in (plain, other):
        [[nxt]] = backend.generate([prompt + first], n=1)
        assert nxt.full_text == correct_step_text(SCRIPT, 1)
    scorer = ScriptedScorer([SCRIPT], noise=0.0)
    assert scorer.score([prompt + plain, prompt + other]) == [0.6, 0.6]
    with pytest.raises(ScriptError, match="p_variant"):
        ScriptedBackend([SCRIPT], p_wrong=0.5, p_error=0.2, p_variant=0.5)
