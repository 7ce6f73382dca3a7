"""MCTS end to end on vLLM's CPU build, with the PPM served by vLLM too.

Two processes run `tests/scripts/vllm_search.py` (each starts a policy engine
and a PPM engine side by side): the first scores a set of texts with the PPM
and runs `generate` twice in the same engines, the second reruns `generate`
with fresh engines. Everything is checked here, against transformers and the
tree rules, from what they wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from rstar_pl.data.trees import load_trees  # noqa: E402
from rstar_pl.search import recompute_statistics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "vllm_search.py"
#: vLLM's and transformers' float32 forward passes of the same backbone differ in
#: rounding only (about 1e-7 on the hidden state); tanh of the head keeps that small.
PPM_TOLERANCE = 1e-4
MAX_LENGTH = 64  # the scorer's max_length in the script: longer texts lose their start


def _texts() -> list[str]:
    from rstar_pl.steps import build_prompt

    long_question = "Add up the numbers " + ", ".join(str(k) for k in range(60)) + "."
    return [
        build_prompt("What is 6 times 7?") + "<code>\nx = 6 * 7\n<end_of_step>",
        build_prompt("What is 6 times 7?") + "<code>\nprint(6 * 7)\n<end_of_code>"
        "\n<output>42<end_of_output>\n<answer>The answer is \\boxed{42}.<end_of_answer>",
        build_prompt("Solve 3x = 6."),
        build_prompt(long_question) + "<code>\nprint(sum(range(60)))\n<end_of_code>",  # > 64 tokens
    ]


@pytest.fixture(scope="module")
def ppm_export(tiny_model_dir, tmp_path_factory) -> Path:
    """A PPM on the tiny backbone with a random (seeded, non-zero) value head, small
    enough that tanh does not saturate."""
    import torch
    from transformers import AutoTokenizer

    from modules.export import export_ppm
    from modules.value_model import ValueHeadModel

    model = ValueHeadModel.from_backbone(str(tiny_model_dir))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.value_head.weight.copy_(
            0.1 * torch.randn(model.value_head.weight.shape, generator=generator)
        )
        model.value_head.bias.fill_(0.05)
    out = tmp_path_factory.mktemp("ppm") / "ppm"
    return export_ppm(model, AutoTokenizer.from_pretrained(tiny_model_dir), out)


def _run(tiny_model_dir: Path, ppm: Path, work: Path, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tiny_model_dir), str(ppm), str(work), mode],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / f"{mode}.json").read_text())


@pytest.fixture(scope="module")
def runs(tiny_model_dir, ppm_export, tmp_path_factory) -> tuple[Path, dict, dict]:
    work = tmp_path_factory.mktemp("vllm-search")
    (work / "texts.json").write_text(json.dumps(_texts()))
    first = _run(tiny_model_dir, ppm_export, work, "first")
    rerun = _run(tiny_model_dir, ppm_export, work, "rerun")
    return work, first, rerun


def _records(folder: Path) -> list[str]:
    lines = []
    for path in sorted(folder.glob("trees-*.jsonl")):
        lines += [json.dumps(json.loads(x), sort_keys=True) for x in path.read_text().splitlines()]
    return sorted(lines)


def _scored_by_the_ppm(tree) -> list[int]:
    """Nodes whose prior is the PPM's value: not failed steps (never scored) and not
    graded terminals (with PPM annotation their prior is their grade, +1 or -1)."""
    return [i for i in range(1, len(tree)) if tree.prior[i] is not None and tree.correct[i] is None]


@pytest.mark.slow
def test_vllm_ppm_scores_match_transformers(runs, ppm_export):
    from rstar_pl.backends.ppm import PPMScorer

    _, first, _ = runs
    expected = PPMScorer.from_path(ppm_export, max_length=MAX_LENGTH).score(_texts())
    got = first["ppm_values"]
    assert len(got) == len(expected) == 4
    assert max(abs(a - b) for a, b in zip(got, expected)) < PPM_TOLERANCE
    assert len({round(v, 3) for v in got}) == 4  # a head that tells the texts apart


@pytest.mark.slow
def test_mcts_on_vllm_writes_valid_trees_whose_q_recomputes(runs, ppm_export):
    from rstar_pl.backends.ppm import PPMScorer

    work, first, _ = runs
    trees = load_trees([work / "first"])
    assert first["counts"]["written"] == len(trees) == 3
    hf_ppm = PPMScorer.from_path(ppm_export, max_length=MAX_LENGTH)
    valid = 0
    for tree in trees:
        # failed steps are never explored: a tree whose root has no valid child left
        # is exhausted early (the random tiny policy writes few steps that run)
        assert len(tree.rollouts) == 6 or (tree.closed[0] and 1 <= len(tree.rollouts) < 6)
        visits, value_sum = recompute_statistics(tree)
        assert visits == tree.visits and value_sum == pytest.approx(tree.value_sum)
        # the priors that vLLM's PPM gave during the search are transformers' values
        scored = _scored_by_the_ppm(tree)
        valid += sum(1 for i in range(1, len(tree)) if tree.error[i] is None)
        if scored:  # a node's PPM text is its context: prompt, steps, output blocks
            for i, value in zip(scored, hf_ppm.score([tree.context(i) for i in scored])):
                assert tree.prior[i] == pytest.approx(value, abs=PPM_TOLERANCE)
    assert valid > 0, "the tiny random policy wrote no valid step at all"


def _without_floats(record: str) -> tuple[dict, list[float]]:
    """A tree record with its PPM-derived floats (priors, value sums) taken out."""
    tree = json.loads(record)
    floats = []
    for node in tree["nodes"]:
        floats += [node.pop("prior") or 0.0, node.pop("value_sum")]
    return tree, floats


@pytest.mark.slow
def test_the_same_seed_gives_the_same_trees_in_the_same_engine_in_a_fresh_one_and_alone(runs):
    """What holds on vLLM's CPU build (float32 PPM, the policy in the engine's default
    dtype). Byte for byte the same trees: a repeat in the same engines, whose prefix
    cache now serves most of the prompts, and a rerun in new engines. With one tree
    per batch instead of three (every prompt at other batch positions, beside other
    prompts) the policy's samples and so the trees' nodes, visits and rollouts are
    the same, but the PPM's values move in the last float32 digits (about 1e-7): its
    pooled forward pass is not batch-invariant. On GPUs neither engine is
    batch-invariant unless VLLM_BATCH_INVARIANT=1 (see the README)."""
    work, _, _ = runs
    first = _records(work / "first")
    assert len(first) == 3
    assert _records(work / "again") == first  # repeated in the same engines (prefix cache warm)
    assert _records(work / "rerun") == first  # a new process, new engines
    for a, b in zip(first, _records(work / "alone")):  # batch_size 1 instead of 3
        (tree_a, floats_a), (tree_b, floats_b) = _without_floats(a), _without_floats(b)
        assert tree_a == tree_b
        assert floats_b == pytest.approx(floats_a, abs=1e-6)


@pytest.mark.slow
def test_prefix_caching_serves_prompt_tokens_from_the_cache(runs):
    _, first, rerun = runs
    before, after, again = first["cache_before"], first["cache_after"], first["cache_again"]
    run1 = {k: after[k] - before[k] for k in before}
    run2 = {k: again[k] - after[k] for k in after}
    for run in (run1, run2):
        assert run["total"] == run["computed"] + run["cached"] > 0
    assert run1["cached"] > 0  # siblings and children reuse their parent's prefill
    assert run2["total"] == run1["total"]  # the same prompts again ...
    assert run2["cached"] > run1["cached"]  # ... now mostly from the cache
    assert rerun["cache_after"] == run1  # a fresh engine: what the first run's computed and hit
    assert first["prometheus"] == first["cache_end"]  # the counts are vLLM's own counters
    assert first["cache_end"]["total"] > again["total"]
    ppm = first["ppm_cache"]
    assert ppm["total"] == ppm["computed"] + ppm["cached"] > 0


@pytest.mark.slow
@pytest.mark.real_model
def test_mcts_on_vllm_with_smollm2_and_its_ppm(smollm2_dir, tmp_path, one_torch_thread):
    """The same end to end on the real model: SmolLM2-135M-Instruct as the policy (with
    round 1's few-shot prompt, so that it writes steps that run and trees grow below
    the root), a PPM on its Llama backbone (random head) served by vLLM's pooling runner."""
    import torch

    from modules.export import export_ppm
    from modules.hf import load_backbone
    from modules.tokenizer import load_tokenizer
    from modules.value_model import ValueHeadModel
    from rstar_pl.backends.ppm import PPMScorer

    # as PPM training builds it: the step tokens added to the tokenizer, rows for them
    tokenizer = load_tokenizer(str(smollm2_dir))
    model = ValueHeadModel(load_backbone(str(smollm2_dir), head=False, vocab_size=len(tokenizer)))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # small enough that tanh stays in its linear range
        model.value_head.weight.copy_(
            0.02 * torch.randn(model.value_head.weight.shape, generator=generator)
        )
    ppm = export_ppm(model, tokenizer, tmp_path / "ppm")
    (tmp_path / "texts.json").write_text(json.dumps(_texts()))
    result = _run(smollm2_dir, ppm, tmp_path, "once")
    hf_ppm = PPMScorer.from_path(ppm, max_length=MAX_LENGTH)
    expected = hf_ppm.score(_texts())
    assert max(abs(a - b) for a, b in zip(result["ppm_values"], expected)) < PPM_TOLERANCE
    trees = load_trees([tmp_path / "once"])
    assert len(trees) == 2
    compared = 0
    for tree in trees:
        visits, value_sum = recompute_statistics(tree)
        assert visits == tree.visits and value_sum == pytest.approx(tree.value_sum)
        scored = _scored_by_the_ppm(tree)
        for i, value in zip(scored, hf_ppm.score([tree.context(i) for i in scored])):
            assert tree.prior[i] == pytest.approx(value, abs=PPM_TOLERANCE)
        compared += len(scored)
    # with the few-shot prompt the model writes steps that run: the search went below
    # the first level, and the PPM scored (and transformers re-scored) those steps
    assert max(max(tree.depth) for tree in trees) >= 2
    assert compared > 0
    cache = result["cache_after"]
    assert cache["total"] == cache["computed"] + cache["cached"] and cache["cached"] > 0
