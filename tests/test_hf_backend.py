"""The Hugging Face backend: stop strings, token counts, batching, sampling seeds.

Greedy behaviour is checked on a tiny model trained to write one known
solution (`solver_model_dir`, shared with the harness tests), so the expected
texts are known in advance; sampling is checked on the random tiny model.
"""

from __future__ import annotations

import pytest
import torch
from test_harness_eval import QUESTION, SOLUTION, solver_model_dir  # noqa: F401 (fixture)

from rstar_pl.backends.base import PolicyBackend
from rstar_pl.backends.hf import HFBackend
from rstar_pl.steps import END_OF_CODE, END_OF_STEP, STEP_TOKENS, STOP_STRINGS, build_prompt

PROMPT = build_prompt(QUESTION)
STEP1, _, REST = SOLUTION.partition(END_OF_STEP)
STEP2 = REST.partition(END_OF_CODE)[0]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: extra threads only contend with the other tests on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def solver(solver_model_dir) -> HFBackend:  # noqa: F811 (fixture)
    return HFBackend(solver_model_dir, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def random_model(tiny_model_dir) -> HFBackend:
    return HFBackend(tiny_model_dir, device="cpu")


def _count(backend: HFBackend, text: str) -> int:
    return len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_is_a_policy_backend(solver):
    assert isinstance(solver, PolicyBackend)


def test_stops_at_each_step_and_reports_the_stop(solver):
    [[first]] = solver.generate([PROMPT], stop=STOP_STRINGS, max_tokens=40)
    assert (first.text, first.stop, first.finish_reason) == (STEP1, END_OF_STEP, "stop")
    # Tokens generated: the step's and the stop token's (the step tokens are whole tokens).
    assert first.num_tokens == _count(solver, STEP1 + END_OF_STEP)
    [[second]] = solver.generate([PROMPT + first.full_text], stop=STOP_STRINGS, max_tokens=40)
    assert (second.text, second.stop) == (STEP2, END_OF_CODE)


def test_stop_string_spanning_several_tokens(solver):
    [[completion]] = solver.generate([PROMPT], stop=["6 *"], max_tokens=40)
    assert completion.stop == "6 *"
    assert completion.text == STEP1[: STEP1.index("6 *")]


def test_end_of_sequence_and_length(solver):
    [[whole]] = solver.generate([PROMPT], stop=(), max_tokens=80)
    assert (whole.text, whole.stop, whole.finish_reason) == (SOLUTION, None, "stop")
    assert whole.num_tokens == _count(solver, SOLUTION) + 1  # + the EOS token
    [[cut]] = solver.generate([PROMPT], stop=STOP_STRINGS, max_tokens=3)
    assert (cut.stop, cut.finish_reason, cut.num_tokens) == (None, "length", 3)
    assert STEP1.startswith(cut.text) and cut.text


def test_left_padded_batch_matches_one_by_one(solver):
    prompts = [
        PROMPT,
        build_prompt("A much longer question that pads the other prompt a lot: " * 3),
        build_prompt("Short?"),
    ]
    limit = _count(solver, STEP1 + END_OF_STEP) + 2
    batched = solver.generate(prompts, stop=STOP_STRINGS, max_tokens=limit)
    single = [solver.generate([p], stop=STOP_STRINGS, max_tokens=limit)[0] for p in prompts]
    assert batched == single
    assert batched[0][0].text == STEP1


def test_step_tags_registered_as_special_tokens_are_kept(solver_model_dir):  # noqa: F811
    """A tokenizer may register the step tags as *special* tokens (many chat models
    do); decoding keeps them and strips only padding and end-of-sequence."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(solver_model_dir)
    ids = tok.convert_tokens_to_ids(list(STEP_TOKENS))
    tok.add_special_tokens({"additional_special_tokens": list(STEP_TOKENS)})
    assert tok.convert_tokens_to_ids(list(STEP_TOKENS)) == ids  # same tokens, now special
    assert set(STEP_TOKENS) <= set(tok.all_special_tokens)
    backend = HFBackend(AutoModelForCausalLM.from_pretrained(solver_model_dir), tok, device="cpu")
    [[first]] = backend.generate([PROMPT], stop=STOP_STRINGS, max_tokens=40)
    assert (first.text, first.stop) == (STEP1, END_OF_STEP)
    [[whole]] = backend.generate([PROMPT], stop=(), max_tokens=80)
    assert (whole.text, whole.stop) == (SOLUTION, None)  # the EOS that ended it is not text


def test_greedy_n_gives_copies(solver):
    [group] = solver.generate([PROMPT], n=3, stop=STOP_STRINGS, max_tokens=40)
    assert len(group) == 3 and len(set(group)) == 1


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(random_model):
    state = torch.get_rng_state()
    kwargs = dict(n=3, stop=STOP_STRINGS, max_tokens=12, temperature=1.0)
    a = random_model.generate([PROMPT, build_prompt("2+2?")], seed=7, **kwargs)
    b = random_model.generate([PROMPT, build_prompt("2+2?")], seed=7, **kwargs)
    c = random_model.generate([PROMPT, build_prompt("2+2?")], seed=8, **kwargs)
    assert torch.equal(torch.get_rng_state(), state)
    assert [len(g) for g in a] == [3, 3]
    assert a == b
    assert a != c
    # Three samples of a random model over ~1000 tokens are not all the same.
    assert len({x.text for x in a[0]}) > 1


def test_bad_arguments(random_model):
    with pytest.raises(ValueError, match="n must be >= 1"):
        random_model.generate([PROMPT], n=0)
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        random_model.generate([PROMPT], max_tokens=0)
