"""Synthetic word problems that a tiny model can learn on a CPU in minutes.

A problem is a short story about one person and one kind of item, told either
forwards ("Ava has 12 apples. She buys 5 more. ... How many apples does Ava
have now?") or backwards, as simple algebra ("Ava had some apples. She bought
5 more ... Now she has 20. How many apples did Ava have at first?"). Every
number, every intermediate value and every answer is a positive integer of at
most two digits. Each problem comes with its solution in the step format of
`rstar_pl.steps`, one code step per operation (undone in reverse order for the
backwards stories), and, for every step, a few *flawed*
versions a careless solver writes: the wrong operation (buying taken as giving
away, an operation not undone) or a number copied from the wrong place. The
flawed steps run, so only the final answer shows them to be wrong; the
scripted teacher (`rstar_pl.backends.scripted`) samples them.

Difficulty levels (operations per story):

    level 1: one operation, told forwards                       (2 code steps)
    level 2: two operations forwards, or one backwards          (3 code steps)
    level 3: three operations forwards, or two backwards        (3-4 code steps)

`make_split(seed, count)` draws problems with a fixed seed, levels in equal
shares; `wordproblem_splits` writes the training pool and a held-out split
drawn from a different seed, with no question in both. Records have the fields
the problem loaders read (`index`, `question`, `answer`) plus `level`,
`script` (the solution's code steps) and `flaws` (per step, flawed versions).
`corpus()` is every word the domain can produce, for a word-level tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rstar_pl.errors import UserError
from rstar_pl.files import write_jsonl

__all__ = [
    "LEVELS",
    "WordProblem",
    "corpus",
    "make_problem",
    "make_split",
    "write_problems",
    "wordproblem_splits",
]

LEVELS = (1, 2, 3)

_PEOPLE = (
    ("Ava", "she", "her"),
    ("Ben", "he", "his"),
    ("Cleo", "she", "her"),
    ("Dan", "he", "his"),
    ("Eva", "she", "her"),
    ("Finn", "he", "his"),
    ("Gia", "she", "her"),
    ("Hugo", "he", "his"),
    ("Ivy", "she", "her"),
    ("Jack", "he", "his"),
)
_ITEMS = (
    "apples",
    "books",
    "coins",
    "pens",
    "stamps",
    "shells",
    "cards",
    "marbles",
    "cookies",
    "stickers",
)
_OPS = ("add", "sub", "mul", "div")

#: operation -> (sentence now, sentence past, comment, symbol)
_PHRASES = {
    "add": ("{P} buys {n} more.", "{P} bought {n} more.", "buys {n} more", "+"),
    "sub": ("{P} gives away {n}.", "{P} gave away {n}.", "gives away {n}", "-"),
    "mul": (
        "{P} gets {n} times as many.",
        "{P} got {n} times as many.",
        "gets {n} times as many",
        "*",
    ),
    "div": (
        "{P} splits them into {n} equal piles and keeps one pile.",
        "{P} split them into {n} equal piles and kept one pile.",
        "keeps one of {n} piles",
        "//",
    ),
}
_INVERSE = {"add": "sub", "sub": "add", "mul": "div", "div": "mul"}
_UNDO = "undo: {comment}"
#: the solution's one variable. Not the item's name: in the question an item is a word
#: after a space, at the start of a code line it is a different token, and a tiny model
#: copies it badly.
_VAR = "count"
_PRINT_COMMENT = "# Now print the final answer"
#: every number of a story and of its solution has at most two digits: a tiny model copies a
#: number digit by digit, and three-digit numbers were what it copied wrong most often
_MAX_VALUE = 99


@dataclass(frozen=True)
class WordProblem:
    """One problem with its step-by-step solution.

    Attributes:
        index: unique id within its split.
        level: difficulty, 1..3 (see the module docstring).
        question: the story and its question.
        answer: the exact answer, as text.
        script: the solution's code steps; the last one prints the answer.
        flaws: per step of `script`, flawed versions of that step that run
            but lead to a wrong answer (the print step has none).
    """

    index: str
    level: int
    question: str
    answer: str
    script: tuple[str, ...]
    flaws: tuple[tuple[str, ...], ...]

    def to_record(self) -> dict:
        return {
            "index": self.index,
            "question": self.question,
            "answer": self.answer,
            "level": self.level,
            "script": list(self.script),
            "flaws": [list(f) for f in self.flaws],
        }


def _apply(value: int, op: str, n: int) -> int | None:
    """`value op n`, or None when the result leaves the domain (negative, inexact, too big)."""
    if op == "add":
        out = value + n
    elif op == "sub":
        out = value - n
    elif op == "mul":
        out = value * n
    else:
        if value % n:
            return None
        out = value // n
    return out if 0 < out <= _MAX_VALUE else None


def _operand(rng: random.Random, op: str) -> int:
    return rng.randint(2, 5) if op in ("mul", "div") else rng.randint(2, 19)


def _story(rng: random.Random, steps: int) -> tuple[int, list[tuple[str, int]], list[int]] | None:
    """(start, [(op, n)], values after each op) of a story that stays in the domain."""
    start = rng.randint(6, 40)
    ops, values, value = [], [], start
    for _ in range(steps):
        op = rng.choice(_OPS)
        n = _operand(rng, op)
        if op == "div" and value % n:
            divisors = [d for d in range(2, 6) if value % d == 0]
            if not divisors:
                op, n = "add", rng.randint(2, 19)
            else:
                n = rng.choice(divisors)
        new = _apply(value, op, n)
        if new is None:
            return None
        ops.append((op, n))
        values.append(new)
        value = new
    return start, ops, values


def _step(k: int, comment: str, line: str) -> str:
    return f"# Step {k}: {comment}\n{line}"


def _code(k: int, left: str, op: str, n: int, *, undo: bool = False) -> str:
    """Step k of a solution: `count = left <op> n`, with a comment that says which
    operation of the story it reads (or, with `undo`, undoes by the inverse)."""
    comment = _PHRASES[op][2].format(n=n)
    if undo:
        comment, op = _UNDO.format(comment=comment), _INVERSE[op]
    return _step(k, comment, f"{_VAR} = {left} {_PHRASES[op][3]} {n}")


def _run(first: int, steps: list[tuple[str, int]]) -> int:
    """What the code steps `count = count <op> n` compute from `first` (Python's `//`)."""
    value = first
    for op, n in steps:
        value = {"add": value + n, "sub": value - n, "mul": value * n, "div": value // n}[op]
    return value


def _other_numbers(n: int, numbers: list[int]) -> list[int]:
    """Numbers of the story other than `n`, at most two (a number copied from the wrong place)."""
    seen: list[int] = []
    for m in numbers:
        if m != n and m not in seen:
            seen.append(m)
    return seen[:2]


def _sentence(template: str, k: int, pronoun: str, n: int) -> str:
    text = template.format(P=pronoun.capitalize(), n=n)
    return text if k == 1 else "Then " + text[0].lower() + text[1:]


def _solution(first: int, reads: list[tuple[str, int]], numbers: list[int], *, undo: bool):
    """(script, flaws) of a solution that applies `reads` (the story's operations in the
    order the code handles them; inverted when `undo`) to `first`.

    A step's flaws are the misreadings of a careless solver: the opposite operation
    (when undoing, the story's own operation done again), or the right operation with
    another number of the story. A misreading that happens to give the right answer
    is left out: only the final answer tells a flaw from a solution.
    """

    def applied(op: str) -> str:
        return _INVERSE[op] if undo else op

    correct = [(applied(op), n) for op, n in reads]
    answer = _run(first, correct)
    script, flaws = [], []
    for k, (op, n) in enumerate(reads, 1):
        left = str(first) if k == 1 else _VAR
        script.append(_code(k, left, op, n, undo=undo))
        options = [(op if undo else _INVERSE[op], n, False)]
        options += [(op, m, undo) for m in _other_numbers(n, numbers)]
        wrong = []
        for read_op, m, as_undo in options:
            code_op = _INVERSE[read_op] if as_undo else read_op
            steps = correct[: k - 1] + [(code_op, m)] + correct[k:]
            if _run(first, steps) != answer:
                wrong.append(_code(k, left, read_op, m, undo=as_undo))
        flaws.append(tuple(wrong))
    return script, flaws


def _forward(rng: random.Random, person, item: str, steps: int):
    story = _story(rng, steps)
    if story is None:
        return None
    start, ops, values = story
    name, pronoun, _ = person
    sentences = [f"{name} has {start} {item}."]
    sentences += [_sentence(_PHRASES[op][0], k, pronoun, n) for k, (op, n) in enumerate(ops, 1)]
    sentences.append(f"How many {item} does {name} have now?")
    script, flaws = _solution(start, ops, [start] + [n for _, n in ops], undo=False)
    return " ".join(sentences), values[-1], script, flaws


def _backward(rng: random.Random, person, item: str, steps: int):
    story = _story(rng, steps)
    if story is None:
        return None
    start, ops, values = story
    name, pronoun, _ = person
    sentences = [f"{name} had some {item}."]
    sentences += [_sentence(_PHRASES[op][1], k, pronoun, n) for k, (op, n) in enumerate(ops, 1)]
    sentences.append(f"Now {pronoun} has {values[-1]} {item}.")
    sentences.append(f"How many {item} did {name} have at first?")
    numbers = [n for _, n in ops] + [values[-1]]
    script, flaws = _solution(values[-1], list(reversed(ops)), numbers, undo=True)
    return " ".join(sentences), start, script, flaws


def make_problem(rng: random.Random, level: int, index: str) -> WordProblem:
    """One problem of `level`, drawn with `rng`."""
    if level not in LEVELS:
        raise UserError(f"word problem level must be one of {LEVELS}, got {level!r}")
    while True:
        person, item = rng.choice(_PEOPLE), rng.choice(_ITEMS)
        backward = level > 1 and rng.random() < 0.5
        built = (
            _backward(rng, person, item, level - 1)
            if backward
            else _forward(rng, person, item, level)
        )
        if built is None:
            continue
        question, answer, script, flaws = built
        script.append(f"{_PRINT_COMMENT}\nprint({_VAR})")
        flaws.append(())
        return WordProblem(index, level, question, str(answer), tuple(script), tuple(flaws))


def make_split(
    seed: int, count: int, *, prefix: str = "wp", exclude: frozenset[str] = frozenset()
) -> list[WordProblem]:
    """`count` distinct problems drawn with `seed`, levels 1, 2, 3 in turn;
    questions in `exclude` (another split's) are never drawn."""
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[WordProblem] = []
    while len(out) < count:
        level = LEVELS[len(out) % len(LEVELS)]
        problem = make_problem(rng, level, f"{prefix}-{len(out):05d}")
        if problem.question in seen:
            continue
        seen.add(problem.question)
        out.append(problem)
    return out


def write_problems(path: str | Path, problems: list[WordProblem]) -> Path:
    """Write problems as JSONL (atomically: a temporary file, then rename)."""
    path = Path(path)
    write_jsonl(path, (problem.to_record() for problem in problems))
    return path


def wordproblem_splits(
    out_dir: str | Path, *, train: int, heldout: int, seed: int = 0, heldout_seed: int = 1_000_003
) -> tuple[Path, Path]:
    """Write `train.jsonl` and `heldout.jsonl` in `out_dir`; return their paths.

    The held-out split is drawn first, from its own seed, so it is the same
    whatever the size of the training pool; training questions avoid it.
    """
    if train < 1 or heldout < 1:
        raise UserError(f"word problems: train and heldout must be >= 1, got {train}, {heldout}")
    held = make_split(heldout_seed, heldout, prefix="heldout")
    pool = make_split(seed, train, prefix="train", exclude=frozenset(p.question for p in held))
    out = Path(out_dir)
    return write_problems(out / "train.jsonl", pool), write_problems(out / "heldout.jsonl", held)


def corpus() -> Iterator[str]:
    """Texts covering every word the domain writes (questions, code, comments)."""
    for k, person in enumerate(_PEOPLE):
        for item in _ITEMS:
            yield f"{person[0]} {person[1]} {person[1].capitalize()} {person[2]} {item} "
        rng = random.Random(k)
        for level in LEVELS:
            for _ in range(20):
                problem = make_problem(rng, level, "corpus")
                yield problem.question
                yield from problem.script
                for flawed in problem.flaws:
                    yield from flawed
