"""The synthetic domain of the CPU demo, its word-level tokenizer and its scripted teacher."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rstar_pl.backends.scripted import Script, ScriptedBackend, scripts_from_problems
from rstar_pl.data.problems import ProblemsConfig, load_problems
from rstar_pl.data.wordproblems import LEVELS, make_problem, make_split, wordproblem_splits
from rstar_pl.steps import build_prompt, join_code, parse_trajectory
from rstar_pl.tiny import build_tiny_model


def _program(steps: list[str]) -> str:
    return join_code(
        parse_trajectory("<code>\n" + "\n<end_of_step>\n".join(steps) + "\n<end_of_code>")
    )


@pytest.fixture(scope="module")
def box():
    from rstar_pl.sandbox import Sandbox

    with Sandbox(timeout=20) as sandbox:
        yield sandbox


def test_examples_read_as_intended():
    """Two problems worked out by hand from the generator's seed."""
    import random

    forward = make_problem(random.Random(3), 2, "x")
    assert forward.level == 2 and len(forward.script) == 3
    assert forward.script[-1] == "# Now print the final answer\nprint(count)"
    # every number a step uses is one the question states
    for step in forward.script[:-1]:
        line = step.splitlines()[-1]
        assert line.startswith("count = ")
        numbers = [t for t in line.split() if t.isdigit()]
        assert numbers and all(n in forward.question.replace(".", " ").split() for n in numbers)
    backward = next(
        p
        for p in (make_problem(random.Random(s), 3, "y") for s in range(50))
        if "at first" in p.question
    )
    assert "undo:" in backward.script[0]


def test_every_solution_prints_its_answer_and_every_flaw_a_wrong_one(box):
    problems = make_split(5, 60)
    assert Counter(p.level for p in problems) == {1: 20, 2: 20, 3: 20}
    programs, expected = [], []
    for p in problems:
        assert int(p.answer) > 0
        programs.append(_program(list(p.script)))
        expected.append((p.answer, True))
        for k, flawed in enumerate(p.flaws):
            for wrong in flawed:
                steps = list(p.script)
                steps[k] = wrong
                programs.append(_program(steps))
                expected.append((p.answer, False))
        assert all(p.flaws[:-1]) and p.flaws[-1] == ()  # every step but the print can go wrong
    results = box.run_many(programs)
    for result, (answer, right) in zip(results, expected):
        assert result.ok or not right, result.error
        printed = result.stdout.strip() if result.ok else None
        assert (printed == answer) is right


def test_held_out_split_is_fixed_and_disjoint(tmp_path):
    train, held = wordproblem_splits(tmp_path / "a", train=30, heldout=12, seed=0)
    _, held_again = wordproblem_splits(tmp_path / "b", train=90, heldout=12, seed=7)
    assert held.read_text() == held_again.read_text()  # whatever the training pool
    questions = [json.loads(line)["question"] for line in train.read_text().splitlines()]
    held_questions = {json.loads(line)["question"] for line in held.read_text().splitlines()}
    assert len(set(questions)) == 30 and not set(questions) & held_questions
    problems = load_problems(ProblemsConfig(source=str(train))).problems
    assert [p.meta["level"] for p in problems[:6]] == [*LEVELS, *LEVELS]


def test_word_tokenizer_gives_one_token_per_word_and_decodes_exactly(tmp_path):
    from transformers import AutoTokenizer

    folder = build_tiny_model(
        tmp_path / "m",
        tokenizer="word",
        corpus="wordproblems",
        architecture={"hidden_size": 64, "num_hidden_layers": 2},
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    problem = make_split(9, 3)[2]
    text = build_prompt(problem.question) + "<code>\n" + "\n<end_of_step>\n".join(problem.script)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < 200
    for word in (" marbles", " undo", " count", " piles"):
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert len(tokenizer(" 47", add_special_tokens=False)["input_ids"]) == 3  # " ", "4", "7"
    # text outside the domain still encodes (bytes), nothing is lost
    odd = "Zebra ∑ 3.5"
    assert tokenizer.decode(tokenizer(odd, add_special_tokens=False)["input_ids"]) == odd


def test_teacher_writes_the_problems_own_flawed_steps(tmp_path):
    path = tmp_path / "p.jsonl"
    problem = make_split(4, 2)[1]  # a level-2 problem: two steps that can go wrong
    path.write_text(json.dumps(problem.to_record()) + "\n")
    scripts = scripts_from_problems(load_problems(ProblemsConfig(source=str(path))).problems)
    backend = ScriptedBackend(scripts, p_wrong=0.5, p_error=0.0, seed=0)
    prompt = build_prompt(problem.question)
    firsts = Counter()
    for seed in range(200):
        (completion,) = backend.generate([prompt], n=1, seed=[seed], temperature=1.0)[0]
        firsts[completion.text.removeprefix("<code>\n").rstrip("\n")] += 1
    allowed = {problem.script[0], *problem.flaws[0]}
    assert set(firsts) <= allowed and set(problem.flaws[0]) <= set(firsts)
    assert 60 <= firsts[problem.script[0]] <= 140  # p_wrong = 0.5 of 200
    # the print step has no flaw: even a "wrong" draw writes it correctly
    after = prompt + "<code>\n" + "\n<end_of_step>\n".join(problem.script[:-1]) + "\n<end_of_step>"
    outs = {c.text for c in backend.generate([after], n=20, seed=[1], temperature=1.0)[0]}
    assert outs == {"\n" + problem.script[-1] + "\n"}


def test_flaws_must_match_the_steps():
    with pytest.raises(ValueError, match="2 lists of flawed steps for 1 steps"):
        Script("q", ("print(1)",), (("print(2)",), ()))
