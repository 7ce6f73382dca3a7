"""`harness eval`: files written, resume, settings checks, and answers graded right.

Three policies serve here: the tiny random model (the CLI end to end on the
benchmark slices in tests/data), a tiny model trained on the spot to write one known
step-format solution (real generation, real code execution, a correct answer),
and the scripted backend (no model; many problems solved correctly and fast).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.evaluate import EvalConfig, EvalConfigError, evaluate
from harness.metrics import AnswerAccuracy
from rstar_pl.backends.scripted import Script, ScriptedBackend, ScriptedScorer
from rstar_pl.steps import build_prompt


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: extra threads only contend with the other tests on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the CLI on the tiny random model and the benchmark slices in tests/data ------------------


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_eval_writes_predictions_summary_and_config(
    tiny_model_dir, benchmarks_dir, tmp_path, capsys
):
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--checkpoint",
        str(tiny_model_dir),
        "--tasks",
        "aime2024,math500",
        "--limit",
        "2",
        "--data-dir",
        str(benchmarks_dir),
        "--out",
        str(out),
        "--max-tokens",
        "8",
        "--max-depth",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "aime2024" in table and "math500" in table and "tokens/problem" in table

    for task, first_reference in (
        ("aime2024", "204"),
        ("math500", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ):
        records = _lines(out / task / "predictions.jsonl")
        assert [r["index"] for r in records] == [0, 1]
        assert records[0]["reference"] == first_reference
        for r in records:
            assert set(r) >= {
                "question",
                "reference",
                "completion",
                "extracted",
                "correct",
                "num_tokens",
            }
            # A random model writes no boxed answer within 2 steps of 8 tokens.
            assert r["correct"] is False
            assert 1 <= r["num_tokens"] <= 16
        summary = json.loads((out / task / "summary.json").read_text())
        assert summary["count"] == 2 and summary["correct"] == 0 and summary["accuracy"] == 0.0
        assert summary["tokens_per_problem"] == sum(r["num_tokens"] for r in records) / 2
        assert summary["seconds"] > 0
        saved = json.loads((out / task / "config.json").read_text())
        assert saved["checkpoint"] == str(tiny_model_dir) and saved["limit"] == 2
        assert saved["max_tokens"] == 8 and saved["task"] == task
    assert json.loads((out / "summary.json").read_text())["tasks"][0]["task"] == "aime2024"


def test_cli_bad_input_is_one_line_with_exit_2(tiny_model_dir, benchmarks_dir, tmp_path, capsys):
    base = [
        "eval",
        "--checkpoint",
        str(tiny_model_dir),
        "--out",
        str(tmp_path),
        "--data-dir",
        str(benchmarks_dir),
    ]
    assert main([*base, "--tasks", "aime2042"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Did you mean 'aime2024'" in err
    assert main([*base, "--tasks", "aime2024", "--search", "mcts"]) == 2
    assert "--search mcts ranks steps with a PPM: give --ppm DIR" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(tmp_path / "none"),
                "--tasks",
                "amc23",
                "--data-dir",
                str(benchmarks_dir),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err


def test_cli_lists_tasks(capsys):
    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert "math500" in listing and "math500_test.json" in listing
    assert "HuggingFaceH4/MATH-500" in listing


# --- scripted policy: correct answers, resume, settings -------------------------------------


SCRIPTS = {
    "Tom lifts two 20-pound weights 12 times. With two 15-pound weights, how many lifts?": (
        "total = 2 * 20 * 12",
        "per_rep = 2 * 15",
        "print(total / per_rep)",
    ),
    "What is six times seven?": ("x = 6 * 7", "print(x)"),
    "What is the sum of the first ten positive integers?": ("print(sum(range(1, 11)))",),
}
# References: 16 and 42 are right; 56 is wrong on purpose (the true sum is 55).
REFERENCES = ["16", "42", "56"]


def _task_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    records = [
        {"index": i, "question": q, "answer": a}
        for i, (q, a) in enumerate(zip(SCRIPTS, REFERENCES, strict=True))
    ]
    (data / "amc23_test.json").write_text(json.dumps(records))
    return data


class CountingBackend(ScriptedBackend):
    def __init__(self):
        super().__init__([Script(q, s) for q, s in SCRIPTS.items()], p_wrong=0, p_error=0)
        self.prompts: list[str] = []

    def generate(self, prompts, **kwargs):
        self.prompts += list(prompts)
        return super().generate(prompts, **kwargs)


def _config(tmp_path: Path, **overrides) -> EvalConfig:
    options = dict(
        checkpoint="scripted",
        tasks=["amc23"],
        data_dir=str(_task_dir(tmp_path)),
        out=str(tmp_path / "out"),
        progress=False,
        batch_size=2,
    )
    return EvalConfig(**{**options, **overrides})


def test_scripted_policy_is_graded_with_executed_code(tmp_path, sandbox):
    (summary,) = evaluate(_config(tmp_path), backend=CountingBackend(), sandbox=sandbox)
    assert (summary["correct"], summary["count"]) == (2, 3)
    assert summary["accuracy"] == pytest.approx(2 / 3)
    records = _lines(tmp_path / "out" / "amc23" / "predictions.jsonl")
    assert [r["extracted"] for r in records] == ["16.0", "42", "55"]
    assert [r["correct"] for r in records] == [True, True, False]
    # The output block holds what the program printed, inserted by the sandbox run.
    assert "<output>16.0<end_of_output>" in records[0]["completion"]
    assert all(r["code_runs"] == 1 and r["finish_reason"] == "answer" for r in records)


def test_resume_skips_finished_problems(tmp_path, sandbox):
    first = CountingBackend()
    evaluate(_config(tmp_path, limit=2), backend=first, sandbox=sandbox)
    assert first.prompts  # it did generate

    again = CountingBackend()
    (summary,) = evaluate(_config(tmp_path, limit=2), backend=again, sandbox=sandbox)
    assert again.prompts == [] and summary["solved_this_run"] == 0 and summary["count"] == 2

    more = CountingBackend()
    (summary,) = evaluate(_config(tmp_path, limit=3), backend=more, sandbox=sandbox)
    assert summary["solved_this_run"] == 1 and summary["count"] == 3
    # Only the new problem was prompted.
    question3 = list(SCRIPTS)[2]
    assert more.prompts and all(p.startswith(build_prompt(question3)) for p in more.prompts)
    predictions = tmp_path / "out" / "amc23" / "predictions.jsonl"
    assert [r["index"] for r in _lines(predictions)] == [0, 1, 2]


def test_resume_drops_a_line_cut_by_an_interruption(tmp_path, sandbox):
    evaluate(_config(tmp_path, limit=2), backend=CountingBackend(), sandbox=sandbox)
    predictions = tmp_path / "out" / "amc23" / "predictions.jsonl"
    lines = predictions.read_text().splitlines()
    predictions.write_text(lines[0] + "\n" + lines[1][:25])  # killed mid-write
    backend = CountingBackend()
    (summary,) = evaluate(_config(tmp_path, limit=2), backend=backend, sandbox=sandbox)
    assert summary["solved_this_run"] == 1 and summary["correct"] == 2
    assert [r["index"] for r in _lines(predictions)] == [0, 1]


def test_changed_settings_refuse_to_mix_results(tmp_path, sandbox):
    evaluate(_config(tmp_path, limit=1), backend=CountingBackend(), sandbox=sandbox)
    with pytest.raises(EvalConfigError, match=r"max_tokens=1024, not 64; use another --out"):
        evaluate(
            _config(tmp_path, limit=1, max_tokens=64), backend=CountingBackend(), sandbox=sandbox
        )
    (summary,) = evaluate(
        _config(tmp_path, limit=1, max_tokens=64, overwrite=True),
        backend=CountingBackend(),
        sandbox=sandbox,
    )
    assert summary["solved_this_run"] == 1


def test_a_refused_resume_leaves_every_file_as_it_was(tmp_path, sandbox):
    evaluate(_config(tmp_path, limit=1), backend=CountingBackend(), sandbox=sandbox)
    from rstar_pl.files import is_locked

    out = tmp_path / "out"

    def results():  # the lock file records its last holder (with the second), not results
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".eval.lock"}

    before = results()
    with pytest.raises(EvalConfigError, match="max_tokens=1024, not 64"):
        evaluate(
            _config(tmp_path, limit=1, max_tokens=64), backend=CountingBackend(), sandbox=sandbox
        )
    assert results() == before
    assert is_locked(out / ".eval.lock") is None


def test_a_resumed_summary_keeps_the_seconds_already_spent(tmp_path, sandbox):
    (first,) = evaluate(_config(tmp_path, limit=2), backend=CountingBackend(), sandbox=sandbox)
    # this run's wall time also holds grading and writing, besides solving
    assert first["seconds_this_run"] >= first["seconds"] > 0
    (again,) = evaluate(_config(tmp_path, limit=2), backend=CountingBackend(), sandbox=sandbox)
    assert again["seconds"] == first["seconds"] and again["seconds_this_run"] == 0
    (more,) = evaluate(_config(tmp_path, limit=3), backend=CountingBackend(), sandbox=sandbox)
    records = _lines(tmp_path / "out" / "amc23" / "predictions.jsonl")
    # the time of every problem solved so far, whichever run solved it
    assert more["seconds"] == pytest.approx(sum(r["seconds"] for r in records), abs=1e-3)
    assert more["seconds"] == pytest.approx(first["seconds"] + records[2]["seconds"], abs=1e-3)


def test_two_runs_on_one_out_are_refused_naming_the_first(tmp_path, sandbox, capsys):
    from rstar_pl.files import exclusive_output

    out = tmp_path / "out"
    with exclusive_output(out, "eval", what="--out", command="harness eval --tasks amc23"):
        with pytest.raises(
            OSError,
            match=rf"--out {out} is being written by another run "
            r"\(pid \d+, since .*: harness eval --tasks amc23\)",
        ):
            evaluate(_config(tmp_path), backend=CountingBackend(), sandbox=sandbox)
        assert (
            main(
                [
                    "eval",
                    "--checkpoint",
                    "x",
                    "--tasks",
                    "amc23",
                    "--out",
                    str(out),
                    "--data-dir",
                    str(_task_dir(tmp_path)),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "is being written by another run" in err
    assert not (out / "amc23").exists()
    (summary,) = evaluate(_config(tmp_path), backend=CountingBackend(), sandbox=sandbox)
    assert summary["count"] == 3


def test_bad_settings_name_the_flag(tmp_path):
    with pytest.raises(EvalConfigError, match="--limit must be >= 0, got -1"):
        _config(tmp_path, limit=-1)
    with pytest.raises(EvalConfigError, match="--backend must be one of hf, vllm"):
        _config(tmp_path, backend="tgi")


def _search(tmp_path, sandbox, mode, **options):
    scripts = [Script(q, st) for q, st in SCRIPTS.items()]
    # A wrong step shifts a value, and every script carries it into the printed answer.
    backend = ScriptedBackend(scripts, p_wrong=0.3, p_error=0.0, seed=3)
    scorer = ScriptedScorer(scripts, margin=0.6, noise=0.0)
    config = _config(tmp_path, search=mode, ppm="scripted", batch_size=3, **options)
    (summary,) = evaluate(config, backend=backend, sandbox=sandbox, scorer=scorer)
    return summary, _lines(tmp_path / "out" / "amc23" / "predictions.jsonl")


def test_best_of_n_vote_follows_the_ppm(tmp_path, sandbox):
    summary, records = _search(tmp_path, sandbox, "best_of_n", trajectories=8, top_k=1)
    for record, right in zip(records, ["16.0", "42", "55"], strict=True):
        answers = [answer for answer, _ in record["candidates"]]
        assert len(answers) == 8 and right in answers  # some sample got it right ...
        assert record["extracted"] == right  # ... and the PPM's favourite wins the vote
        assert record["num_tokens"] > 0
    # Wrong samples were there to be outvoted.
    assert any(len(set(a for a, _ in r["candidates"])) > 1 for r in records)
    assert (summary["correct"], summary["count"]) == (2, 3)


@pytest.mark.parametrize(
    ("mode", "options", "per_problem"),
    [
        ("mcts", dict(trajectories=2, rollouts=3, samples=2), 2),
        ("beam", dict(trajectories=2, samples=2), None),
    ],
)
def test_mcts_and_beam_run_from_the_cli_settings(tmp_path, sandbox, mode, options, per_problem):
    summary, records = _search(tmp_path, sandbox, mode, **options)
    assert summary["count"] == 3 and summary["search"] == mode
    for record in records:
        scores = [score for _, score in record["candidates"]]
        assert scores == sorted(scores, reverse=True)
        if per_problem is not None:  # one best trajectory per MCTS run
            assert len(scores) <= per_problem
        assert record["extracted"] in {a for a, _ in record["candidates"]} | {None}


# --- a real model that writes one known solution ----------------------------------------------

QUESTION = "What is six times seven?"
SOLUTION = (
    "<code>\n# Step 1: multiply\nx = 6 * 7\n<end_of_step>\n# Now print the final answer\n"
    "print(x)\n<end_of_code>\n<output>42<end_of_output>\n"
    "<answer>The answer is \\boxed{42}.<end_of_answer>"
)


@pytest.fixture(scope="session")
def solver_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model trained until it writes SOLUTION after QUESTION's prompt (about 3 s).

    Built once per session (other test files import this fixture and reuse the folder).
    """
    out = tmp_path_factory.getbasetemp() / "solver_model"
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tokenizer(build_prompt(QUESTION) + SOLUTION + tokenizer.eos_token, return_tensors="pt")[
        "input_ids"
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only contend
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
            model.train()
            for _ in range(250):
                loss = model(input_ids=ids, labels=ids).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.2, f"memorisation did not converge (loss {loss.item():.3f})"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_trained_model_solves_with_real_code_execution(solver_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    problems = [
        {"index": "a", "question": QUESTION, "answer": "42"},
        {"index": "b", "question": QUESTION, "answer": "41"},
    ]
    (data / "aime2024_test.json").write_text(json.dumps(problems))
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(solver_model_dir),
                "--tasks",
                "aime2024",
                "--data-dir",
                str(data),
                "--out",
                str(out),
                "--max-tokens",
                "40",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    records = _lines(out / "aime2024" / "predictions.jsonl")
    assert [r["correct"] for r in records] == [True, False]
    first = records[0]
    assert first["completion"] == SOLUTION
    assert first["extracted"] == "42" and first["code_runs"] == 1
    assert first["finish_reason"] == "answer"
    summary = json.loads((out / "aime2024" / "summary.json").read_text())
    assert summary["accuracy"] == 0.5
    assert "50.0" in capsys.readouterr().out


# --- the metric --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # merged, never updated
def test_accuracy_metric_counts_and_merges_like_processes():
    rank0, rank1 = AnswerAccuracy(), AnswerAccuracy()
    rank0.update([True, False, True])
    rank1.update(torch.tensor([False]))
    # What the DDP sync does: sum both states, then divide: (2 + 0) / (3 + 1).
    merged = AnswerAccuracy()
    merged.merge_state(rank0)
    merged.merge_state(rank1)
    assert merged.compute().item() == pytest.approx(0.5)
    assert rank0.compute().item() == pytest.approx(2 / 3)
    assert math.isnan(AnswerAccuracy().compute().item())


def test_lightning_ckpt_is_exported_and_evaluated(solver_model_dir, tmp_path):
    """A PolicyModule .ckpt (weights of the trained solver) evaluates like its HF folder."""
    from modules.policy import PolicyModule

    module = PolicyModule(model=str(solver_model_dir))
    ckpt = tmp_path / "policy.ckpt"
    # The two entries of a Lightning checkpoint that the training loader reads.
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    data = tmp_path / "data"
    data.mkdir()
    (data / "amc23_test.json").write_text(
        json.dumps([{"index": 0, "question": QUESTION, "answer": "42"}])
    )
    config = EvalConfig(
        checkpoint=str(ckpt),
        tasks=["amc23"],
        data_dir=str(data),
        out=str(tmp_path / "out"),
        max_tokens=40,
        device="cpu",
        progress=False,
    )
    (summary,) = evaluate(config)
    assert summary["accuracy"] == 1.0
    assert (tmp_path / "out" / "exported_policy" / "config.json").is_file()


@pytest.fixture(scope="module")
def ppm_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A PPM export of the tiny model with a random (seeded, non-zero) value head."""
    from transformers import AutoTokenizer

    from modules.export import export_ppm
    from modules.value_model import ValueHeadModel

    model = ValueHeadModel.from_backbone(str(tiny_model_dir))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.nn.init.normal_(model.value_head.weight, std=1.0)
    out = tmp_path_factory.mktemp("models") / "ppm"
    return export_ppm(model, AutoTokenizer.from_pretrained(tiny_model_dir), out)


@pytest.mark.parametrize("mode", ["best_of_n", "mcts"])
def test_cli_search_with_a_real_policy_and_ppm(
    mode, tiny_model_dir, ppm_dir, benchmarks_dir, tmp_path
):
    from rstar_pl.backends.ppm import PPMScorer

    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(tiny_model_dir),
                "--ppm",
                str(ppm_dir),
                "--tasks",
                "aime2024",
                "--limit",
                "1",
                "--data-dir",
                str(benchmarks_dir),
                "--out",
                str(out),
                "--search",
                mode,
                "--trajectories",
                "2",
                "--samples",
                "2",
                "--rollouts",
                "2",
                "--max-tokens",
                "6",
                "--max-depth",
                "2",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    (record,) = _lines(out / "aime2024" / "predictions.jsonl")
    # A random policy's 6-token steps rarely run: a chain whose first step fails gives
    # no candidate (failed steps are not explored), so there may be none at all.
    assert len(record["candidates"]) <= 2 and record["num_tokens"] > 0
    scores = [score for _, score in record["candidates"]]
    assert all(-1 <= s <= 1 for s in scores)
    if mode == "mcts":  # each run contributes its best answered trajectory
        assert all(answer is not None for answer, _ in record["candidates"])
    if mode != "best_of_n" or not scores:
        return  # MCTS ranks by the terminal's Q, which mixes PPM values and rewards
    # Best-of-N ranks by the PPM's value of each whole trajectory.
    scorer = PPMScorer.from_path(ppm_dir)
    prompt = build_prompt(record["question"])
    assert scorer.score([prompt + record["completion"]])[0] == pytest.approx(scores[0], abs=1e-3)


def test_config_file_sets_defaults_and_flags_override(tiny_model_dir, benchmarks_dir, tmp_path):
    from harness.cli import load_eval_config_file

    shipped = load_eval_config_file(str(Path(__file__).resolve().parents[1] / "configs/eval.yaml"))
    assert EvalConfig(checkpoint="x", **shipped).tasks[:2] == ["math500", "aime2024"]

    config = tmp_path / "eval.yaml"
    config.write_text(
        f"tasks: [amc23]\nlimit: 1\nmax_tokens: 4\nmax_depth: 1\n"
        f"data_dir: {benchmarks_dir}\nout: {tmp_path / 'from_file'}\n"
    )
    assert (
        main(
            [
                "eval",
                "--config",
                str(config),
                "--checkpoint",
                str(tiny_model_dir),
                "--out",
                str(tmp_path / "from_flag"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "from_flag" / "amc23" / "config.json").read_text())
    assert (saved["limit"], saved["max_tokens"], saved["tasks"]) == (1, 4, ["amc23"])
    assert not (tmp_path / "from_file").exists()


def test_config_file_with_unknown_key_is_named(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text("tasks: [amc23]\nmax_token: 4\n")
    assert main(["eval", "--config", str(config), "--checkpoint", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting(s) max_token" in err and "max_tokens" in err


def test_a_config_file_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_bytes("tasks: [amc23]\nextra_note: caf\u00e9\n".encode("cp1252"))
    assert main(["eval", "--config", str(config), "--checkpoint", "x"]) == 2
    assert capsys.readouterr().err == (
        f"harness eval: error: {config}: not UTF-8 text (byte 0xe9 "
        "at byte offset 30); save the file as UTF-8\n"
    )
