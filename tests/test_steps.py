"""The step format: typing completions, joining code, boxed answers, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstar_pl.steps import (
    END_OF_ANSWER,
    END_OF_CODE,
    END_OF_OUTPUT,
    END_OF_STEP,
    STEP_TOKENS,
    Step,
    StepFormatError,
    build_prompt,
    extract_boxed,
    format_output,
    join_code,
    parse_step,
    parse_trajectory,
    program_output,
    render_trajectory,
)

# The worked example of PAPER.md, as the policy would generate it step by step.
PAPER_COMPLETIONS = [
    (
        "<code>\n# Step 1: total weight lifted with the 20-pound weights\ntotal = 2 * 20 * 12\n",
        END_OF_STEP,
    ),
    (
        "\n# Step 2: weight per repetition with the 15-pound weights\nper_rep = 2 * 15\n",
        END_OF_STEP,
    ),
    ("\n# Now print the final answer\nprint(total / per_rep)\n", END_OF_CODE),
    ("<answer>The answer is \\boxed{16}.", END_OF_ANSWER),
]
PAPER_RESPONSE = (
    "<code>\n# Step 1: total weight lifted with the 20-pound weights\ntotal = 2 * 20 * 12\n"
    "<end_of_step>\n# Step 2: weight per repetition with the 15-pound weights\nper_rep = 2 * 15\n"
    "<end_of_step>\n# Now print the final answer\nprint(total / per_rep)\n<end_of_code>\n"
    "<output>16.0<end_of_output>\n<answer>The answer is \\boxed{16}.<end_of_answer>"
)


def paper_steps() -> list[Step]:
    steps = [parse_step(text, stop) for text, stop in PAPER_COMPLETIONS]
    steps[2] = steps[2].with_output("16.0")
    return steps


def test_completions_are_typed_by_their_stop_string():
    kinds = [s.kind for s in paper_steps()]
    assert kinds == ["step", "step", "code_end", "answer"]


def test_step_text_keeps_the_stop_string_and_code_drops_markers():
    step = parse_step("<code>\nx = 1\n", END_OF_STEP)
    assert step.text == "<code>\nx = 1\n<end_of_step>"
    assert step.code == "\nx = 1\n"


def test_join_code_gives_the_program_of_the_path_and_it_runs():
    program = join_code(paper_steps())
    assert program == (
        "\n# Step 1: total weight lifted with the 20-pound weights\ntotal = 2 * 20 * 12\n"
        "\n# Step 2: weight per repetition with the 15-pound weights\nper_rep = 2 * 15\n"
        "\n# Now print the final answer\nprint(total / per_rep)\n"
    )
    compile(program, "<path>", "exec")  # joins into one valid program


def test_answer_step_gives_the_boxed_answer():
    assert paper_steps()[-1].answer == "16"
    assert paper_steps()[0].answer is None


def test_render_trajectory_reproduces_the_paper_example():
    text = render_trajectory("Q?", paper_steps())
    assert text == build_prompt("Q?") + PAPER_RESPONSE
    assert text.startswith("<|user|>:\nQ?\n<|assistant|>: Let's think step by step")


def test_parse_trajectory_inverts_render():
    assert parse_trajectory(PAPER_RESPONSE) == paper_steps()


def test_official_sft_example_parses(data_dir):
    import json

    records = json.loads((data_dir / "rstar_format/sft_example.json").read_text())
    for record in records:
        steps = parse_trajectory(record["response"])
        assert steps[-1].kind == "answer" and steps[-1].answer is not None
        assert render_trajectory(None, steps) == record["response"]


def test_round1_end_of_output_stop_drops_the_models_own_output():
    step = parse_step("\nprint(2)\n<end_of_code>\n<output>3", END_OF_OUTPUT)
    assert step.kind == "code_end"
    assert step.text == "\nprint(2)\n<end_of_code>"


def test_unterminated_answer_is_accepted_only_with_a_box():
    assert parse_step("<answer>so \\boxed{4}", None).kind == "answer"
    with pytest.raises(StepFormatError, match="without a stop string"):
        parse_step("x = 1\ny =", None)


@pytest.mark.parametrize(
    ("text", "stop", "message"),
    [
        ("x = 1", "<eos>", "unknown stop string '<eos>'; allowed"),
        ("x = 1\n<end_of_step>\ny = 2\n", END_OF_STEP, "contains <end_of_step> before its stop"),
        ("<answer>\\boxed{1}", END_OF_STEP, "code step"),
        ("print(1)\n", END_OF_OUTPUT, "without <end_of_code>"),
    ],
)
def test_malformed_completions_get_one_clear_error(text, stop, message):
    with pytest.raises(StepFormatError, match=message) as info:
        parse_step(text, stop)
    assert "\n" not in str(info.value)


def test_empty_question_is_an_error():
    with pytest.raises(StepFormatError, match="non-empty"):
        build_prompt("  ")


def test_few_shot_prompt_ends_with_the_bare_prompt_and_shows_the_format():
    prompt = build_prompt("What is 2+2?", few_shot=True)
    assert prompt.endswith(build_prompt("What is 2+2?"))
    for token in (END_OF_STEP, END_OF_CODE, END_OF_OUTPUT, END_OF_ANSWER):
        assert token in prompt
    assert prompt.count("<|user|>:") == 3  # two examples and the question


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}", "5"),
        ("a \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed {7}", "7"),
        ("\\boxed{1} and \\boxed{2", "1"),  # last box unterminated: the earlier one counts
        ("no box", None),
        ("\\boxed{", None),
        ("", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_boxed_on_ten_thousand_nested_braces_is_fast():
    # Unterminated nesting must not be quadratic.
    assert extract_boxed("\\boxed{" * 10_000) is None
    assert extract_boxed("\\boxed{" + "{" * 10_000 + "}" * 10_001) == "{" * 10_000 + "}" * 10_000


def test_program_output_cuts_long_output_from_the_left():
    result = _Run(stdout="x" * 50 + "ANSWER\n")
    assert program_output(result, max_chars=10) == "...xxxxANSWER"
    assert format_output(program_output(result, max_chars=10)) == (
        "\n<output>...xxxxANSWER<end_of_output>\n"
    )


class _Run:
    """A sandbox result as `rstar_pl.sandbox.ExecResult` has it."""

    def __init__(self, stdout="", error=None, timed_out=False):
        self.stdout, self.error, self.timed_out = stdout, error, timed_out

    @property
    def ok(self):
        return self.error is None and not self.timed_out


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (_Run("16.0\n"), "16.0"),
        (
            _Run("1\n2\n", "NameError: name 'y' is not defined"),
            "1\n2\nNameError: name 'y' is not defined",
        ),
        (_Run("", "ZeroDivisionError: division by zero"), "ZeroDivisionError: division by zero"),
        (
            _Run("3\n", "Timeout: the run took longer than 1 s", timed_out=True),
            "3\nTimeout: the run took longer than 1 s",
        ),
        # a sandbox that flags a timeout without a message still says so
        (_Run("3\n", None, timed_out=True), "3\nTimeoutError: the program ran too long"),
    ],
)
def test_program_output_is_stdout_then_the_one_line_reason_it_stopped(result, shown):
    assert program_output(result) == shown


def test_join_code_puts_every_step_on_its_own_lines():
    # a policy may write steps without surrounding newlines
    steps = [
        parse_step("x = 1", END_OF_STEP),
        parse_step("y = x + 1", END_OF_STEP),
        parse_step("print(y)", END_OF_CODE),
    ]
    program = join_code(steps)
    assert program == "x = 1\ny = x + 1\nprint(y)\n"
    scope: dict = {}
    exec(compile(program, "<path>", "exec"), scope)
    assert scope["y"] == 2


def test_program_after_an_output_block_starts_afresh():
    """After <end_of_code> and its output, the next program is the code written
    since then (the reference restarts at the last output block)."""
    first = [
        parse_step("<code>\nx = 1\n", END_OF_STEP),
        parse_step("print(x)\n", END_OF_CODE).with_output("1"),
    ]
    again = [parse_step("\ny = 2\n", END_OF_STEP), parse_step("print(y)\n", END_OF_CODE)]
    assert join_code(first) == "\nx = 1\nprint(x)\n"
    assert join_code([*first, again[0]]) == "\ny = 2\n"
    assert join_code([*first, *again]) == "\ny = 2\nprint(y)\n"
    # an answer step between them changes nothing
    answer = parse_step("<answer>\\boxed{1}", END_OF_ANSWER)
    assert join_code([*first, answer, *again]) == "\ny = 2\nprint(y)\n"


def test_step_tokens_are_distinct_and_contain_the_stops():
    assert len(set(STEP_TOKENS)) == len(STEP_TOKENS)
    assert {END_OF_STEP, END_OF_CODE, END_OF_ANSWER} <= set(STEP_TOKENS)


# ---- property-based round trips -------------------------------------------------------

MARKERS = ("<", ">")  # generated code never contains a marker
code_text = st.text(
    alphabet=st.characters(blacklist_characters=MARKERS, blacklist_categories=("Cs",)),
    max_size=40,
)
output_text = code_text.map(str.strip)


@st.composite
def trajectories(draw) -> list[Step]:
    steps = [parse_step(f"<code>{draw(code_text)}", END_OF_STEP)]
    for _ in range(draw(st.integers(0, 4))):
        steps.append(parse_step(draw(code_text), END_OF_STEP))
    steps.append(parse_step(draw(code_text), END_OF_CODE).with_output(draw(output_text)))
    answer = draw(code_text.filter(lambda s: "{" not in s and "}" not in s))
    steps.append(parse_step(f"<answer>{answer}\\boxed{{{answer}}}", END_OF_ANSWER))
    return steps


@settings(max_examples=200, deadline=None)
@given(trajectories())
def test_render_then_parse_is_identity(steps):
    text = render_trajectory(None, steps)
    assert parse_trajectory(text) == steps
    assert steps[-1].answer == extract_boxed(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(code_text, min_size=1, max_size=6))
def test_join_code_is_the_concatenation_of_step_codes_each_ending_a_line(codes):
    steps = [parse_step(code, END_OF_STEP) for code in codes]
    assert join_code(steps) == "".join(c if c.endswith("\n") else c + "\n" for c in codes)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_extract_boxed_never_raises_and_returns_a_substring(text):
    found = extract_boxed(text)
    assert found is None or found in text
