"""benchmarks/ppm_recipes.py's synthetic pairs: one careless-solver flaw per rejected step."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUESTION = (
    "Ava has 15 pens. She buys 8 more. Then she gives away 6. How many pens does Ava have now?"
)
RESPONSE = (
    "<code>\n# Step 1: buys 8 more\ncount = 15 + 8\n<end_of_step>"
    "\n# Step 2: gives away 6\ncount = count - 6\n<end_of_step>"
    "\n# Now print the final answer\nprint(count)\n<end_of_code>\n<output>17<end_of_output>\n"
    "<answer>The answer is \\boxed{17}.<end_of_answer>"
)
STEP1 = "<code>\n# Step 1: buys 8 more\ncount = 15 + 8\n<end_of_step>"
STEP2 = "\n# Step 2: gives away 6\ncount = count - 6\n<end_of_step>"


def _pairs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from ppm_recipes import synthetic_pairs

    from rstar_pl.steps import build_prompt

    sft = tmp_path / "sft.jsonl"
    record = {"problem_id": "p1", "question": QUESTION, "response": RESPONSE}
    sft.write_text(json.dumps(record) + "\n")
    return build_prompt(QUESTION), synthetic_pairs([str(sft)], seed=0)


def test_each_code_step_gets_two_flawed_copies_and_the_answer_one(tmp_path, monkeypatch):
    head, pairs = _pairs(tmp_path, monkeypatch)
    # two code steps x two flaw kinds, and the answer step
    assert len(pairs) == 5
    by_chosen = {}
    for pair in pairs:
        by_chosen.setdefault(pair["chosen"], []).append(pair)
        assert pair["chosen"] != pair["rejected"]
        assert pair["chosen_q"] == 1.0 and pair["rejected_q"] == -1.0
    assert [p["prompt"] for p in by_chosen[STEP1]] == [head, head]
    assert [p["prompt"] for p in by_chosen[STEP2]] == [head + STEP1] * 2
    answer = by_chosen["<answer>The answer is \\boxed{17}.<end_of_answer>"]
    assert len(answer) == 1 and answer[0]["prompt"].endswith("<output>17<end_of_output>\n")
    boxed = re.search(r"boxed\{(-?\d+)\}", answer[0]["rejected"]).group(1)
    assert boxed != "17"


def test_a_flawed_step_differs_in_one_number_or_the_operator(tmp_path, monkeypatch):
    _, pairs = _pairs(tmp_path, monkeypatch)
    for pair in pairs:
        if "<answer>" in pair["chosen"]:
            continue
        chosen_lines, rejected_lines = pair["chosen"].split("\n"), pair["rejected"].split("\n")
        assert len(chosen_lines) == len(rejected_lines)
        changed = [(c, r) for c, r in zip(chosen_lines, rejected_lines) if c != r]
        tokens = [(a, b) for c, r in changed for a, b in zip(c.split(" "), r.split(" ")) if a != b]
        # one number (in the comment and the code, or in the code only) or one operator
        assert {a for a, _ in tokens} in ({"8"}, {"15"}, {"6"}, {"+"}, {"-"})
        assert all(b != a for a, b in tokens)
