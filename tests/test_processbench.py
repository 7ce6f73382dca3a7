"""`harness processbench`: rendering, the metric with hand-worked F1, the command end to end.

The fixture `tests/data/processbench/` holds 5 real samples of each of two splits (3 with a
wrong step, 2 without). `TableScorer` gives each step prefix a score chosen here, so every
number below can be worked out by hand:

gsm8k (label; scores per step):
    gsm8k-2   1; 0.6, -0.2, 0.1, 0.3      gsm8k-386 -1; 0.7, 0.6, 0.5, 0.4, 0.3
    gsm8k-5   2; 0.5, 0.4, 0.3, -0.5      gsm8k-337 -1; 0.2, 0.1, -0.05, 0.3
    gsm8k-7   1; -0.1, -0.3, 0.2, 0.2
math:
    math-0    0; -0.4, 0.2                math-724  -1; 0.1, -0.12
    math-3    1; 0.3, -0.1, -0.2, 0.0     math-835  -1; 0.5, 0.45
    math-8    2; 0.2, 0.1, -0.3, 0.4

Threshold 0 (prediction: first step scored below it). gsm8k: gsm8k-2 -> 1 right, gsm8k-5 -> 3
wrong, gsm8k-7 -> 0 wrong: error acc 1/3; gsm8k-386 -> -1 right, gsm8k-337 -> 2 wrong: correct
acc 1/2; F1 = 2(1/3)(1/2)/(1/3 + 1/2) = 2/5. math: all three erroneous right (0, 1, 2): 1;
math-724 -> 1 wrong, math-835 right: 1/2; F1 = 2/3.

Best threshold on gsm8k. A sample is right for t in (s_label, min of earlier scores] (correct
samples: t <= their minimum): gsm8k-2 (-0.2, 0.6], gsm8k-5 (0.3, 0.4], gsm8k-7 (-0.3, -0.1],
gsm8k-386 t <= 0.3, gsm8k-337 t <= -0.05. For t in (-0.2, -0.1]: gsm8k-2, gsm8k-7 and both
correct ones: F1 = 2(2/3)(1)/(5/3) = 4/5, the maximum (every other interval gives 0, 1/2 or 2/5).
The only candidate midpoint there is (-0.2 + -0.1)/2 = -0.15.

That threshold on math: math-0 -> 0 right, math-3 -> 2 wrong (-0.1 is not below -0.15),
math-8 -> 2 right: 2/3; math-724 (-0.12 is not below) and math-835 right: 1; F1 = 4/5.
Best on math: intervals math-0 (-0.4, inf), math-3 (-0.1, 0.3], math-8 (-0.3, 0.1],
math-724 t <= -0.12, math-835 t <= 0.45. F1 4/5 for t in (-0.3, -0.12] (math-0, math-8, both
correct ones), 2/3 in (-0.1, 0.1], 4/7 in (-0.12, -0.1]. Midpoints in (-0.3, -0.12]: -0.25 and
-0.16; equal F1, the one closer to 0 wins: -0.16.

Mean F1: threshold 0 (2/5 + 2/3)/2 = 8/15; tuned on gsm8k (4/5 + 4/5)/2 = 4/5; best per split 4/5.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.processbench import (
    ProcessBenchConfig,
    ProcessBenchError,
    load_split,
    render_step,
    run_processbench,
    score_records,
    step_prefixes,
)
from harness.step_errors import best_threshold, f1, first_below, score_split, threshold_protocols
from rstar_pl.steps import END_OF_STEP, build_prompt

ROOT = Path(__file__).resolve().parents[1]

TABLE = {
    "gsm8k-2": [0.6, -0.2, 0.1, 0.3],
    "gsm8k-5": [0.5, 0.4, 0.3, -0.5],
    "gsm8k-7": [-0.1, -0.3, 0.2, 0.2],
    "gsm8k-386": [0.7, 0.6, 0.5, 0.4, 0.3],
    "gsm8k-337": [0.2, 0.1, -0.05, 0.3],
    "math-0": [-0.4, 0.2],
    "math-3": [0.3, -0.1, -0.2, 0.0],
    "math-8": [0.2, 0.1, -0.3, 0.4],
    "math-724": [0.1, -0.12],
    "math-835": [0.5, 0.45],
}


@pytest.fixture(scope="module")
def pb_dir(data_dir) -> Path:
    return data_dir / "processbench"


class TableScorer:
    """Scores a prefix by the table above: which sample (its prompt) and how many steps
    (its `<end_of_step>` count). Records every call, to check the batching."""

    def __init__(self, folder: Path) -> None:
        self.by_prompt = {}
        for split in ("gsm8k", "math"):
            for r in load_split(split, data_dir=folder):
                self.by_prompt[build_prompt(r.problem)] = r.id
        self.calls: list[int] = []

    def score(self, texts):
        self.calls.append(len(texts))
        out = []
        for text in texts:
            prompt = next(p for p in self.by_prompt if text.startswith(p))
            out.append(TABLE[self.by_prompt[prompt]][text.count(END_OF_STEP) - 1])
        return out


def test_a_step_becomes_a_comment_only_step_of_our_format():
    assert render_step(0, "First line.\n\nSecond line  ") == (
        "<code>\n# Step 1: First line.\n#\n# Second line\n<end_of_step>"
    )
    assert render_step(2, "  x = 3 ") == "\n# Step 3: x = 3\n<end_of_step>"


def test_prefixes_are_the_prompt_and_the_steps_so_far(pb_dir):
    record = load_split("math", data_dir=pb_dir)[0]  # math-0: two steps
    prompt = build_prompt(record.problem)
    first = render_step(0, record.steps[0])
    second = render_step(1, record.steps[1])
    assert step_prefixes(record) == [prompt + first, prompt + first + second]


def test_metric_pieces():
    assert first_below([0.2, -0.1, -0.5], 0.0) == 1
    assert first_below([0.2, 0.1], 0.0) == -1
    assert f1(0.0, 0.0) == 0.0
    assert f1(1 / 3, 1 / 2) == pytest.approx(2 / 5)
    # a split of one erroneous sample (label 0) and one correct: at t = 0.5 both are right
    assert score_split([[0.1], [0.9]], [0, -1], 0.5).f1 == 1.0


def test_hand_worked_f1_for_the_three_protocols(pb_dir):
    scorer = TableScorer(pb_dir)
    splits = {}
    for split in ("gsm8k", "math"):
        records = load_split(split, data_dir=pb_dir)
        splits[split] = (score_records(records, scorer, batch_size=9), [r.label for r in records])
    got = threshold_protocols(splits)
    assert list(got) == ["fixed", "transfer", "oracle"]
    fixed, transfer, oracle = got["fixed"], got["transfer"], got["oracle"]
    assert (fixed["gsm8k"].error_acc, fixed["gsm8k"].correct_acc) == (pytest.approx(1 / 3), 0.5)
    assert fixed["gsm8k"].f1 == pytest.approx(2 / 5)
    assert (fixed["math"].error_acc, fixed["math"].correct_acc) == (1.0, 0.5)
    assert fixed["math"].f1 == pytest.approx(2 / 3)
    assert oracle["gsm8k"].threshold == pytest.approx(-0.15)
    assert oracle["gsm8k"].f1 == pytest.approx(4 / 5)
    assert transfer["gsm8k"].threshold == transfer["math"].threshold == pytest.approx(-0.15)
    assert (transfer["math"].error_acc, transfer["math"].correct_acc) == (pytest.approx(2 / 3), 1.0)
    assert transfer["math"].f1 == pytest.approx(4 / 5)
    assert oracle["math"].threshold == pytest.approx(-0.16)
    assert oracle["math"].f1 == pytest.approx(4 / 5)
    assert best_threshold(*splits["math"]).threshold == pytest.approx(-0.16)
    # at most 9 prefixes a call, whole samples only: gsm8k 4+4 | 4+5 | 4, math 2+4 | 4+2+2
    assert scorer.calls == [8, 9, 4, 6, 8]


def test_run_writes_summary_table_and_resumes(pb_dir, tmp_path):
    out = tmp_path / "pb"
    config = ProcessBenchConfig(
        ppm="table",
        splits=["gsm8k", "math"],
        data_dir=str(pb_dir),
        out=str(out),
        limit=3,
        batch_size=9,
        progress=False,
    )
    run_processbench(config, scorer=TableScorer(pb_dir))
    # --limit 3 keeps the split's share of erroneous samples (3 of 5: round(1.8) = 2), the
    # first of each kind in file order: samples 0, 1 (erroneous) and 3 (correct)
    rows = [json.loads(line) for line in (out / "scores-gsm8k.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [1, 2, -1]
    full = ProcessBenchConfig(**{**config.to_dict(), "limit": None})
    scorer = TableScorer(pb_dir)
    summary = run_processbench(full, scorer=scorer)
    # only the 2 + 2 samples not scored before are scored now: gsm8k 2 and 4 (4 + 4 steps),
    # math 2 and 4 (4 + 2 steps), one call each
    assert scorer.calls == [4 + 4, 4 + 2]
    rows = [json.loads(line) for line in (out / "scores-gsm8k.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(k for k in TABLE if k.startswith("gsm8k"))
    assert summary["mean_f1"]["fixed"] == pytest.approx(8 / 15)
    assert summary["mean_f1"]["transfer"] == pytest.approx(4 / 5)
    assert summary["mean_f1"]["oracle"] == pytest.approx(4 / 5)
    table = (out / "table.md").read_text()
    assert (
        "| threshold 0 | 40.0 (33.3 / 50.0, t=+0.000) | 66.7 (100.0 / 50.0, t=+0.000) | 53.3 |"
        in table
    )
    assert "best threshold per split (upper bound)" in table
    with pytest.raises(ProcessBenchError, match="ppm='table', not 'other'"):
        run_processbench(
            ProcessBenchConfig(**{**full.to_dict(), "ppm": "other"}), scorer=TableScorer(pb_dir)
        )


def test_a_torn_last_line_is_cut_before_the_resume_appends(pb_dir, tmp_path):
    """A crash mid-write leaves a line without its newline; the resume scores that sample again
    and appends after whole lines only, so every line of the file is a record."""
    out = tmp_path / "pb"
    config = ProcessBenchConfig(
        ppm="table",
        splits=["gsm8k"],
        data_dir=str(pb_dir),
        out=str(out),
        limit=3,
        batch_size=9,
        progress=False,
    )
    run_processbench(config, scorer=TableScorer(pb_dir))
    scores = out / "scores-gsm8k.jsonl"
    with open(scores, "a", encoding="utf-8") as f:
        f.write('{"id": "gsm8k-2", "sco')
    run_processbench(
        ProcessBenchConfig(**{**config.to_dict(), "limit": None}), scorer=TableScorer(pb_dir)
    )
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(k for k in TABLE if k.startswith("gsm8k"))


def test_bad_records_and_settings_are_named(pb_dir, tmp_path):
    records = json.loads((pb_dir / "gsm8k.json").read_text())
    del records[1]["label"]
    (tmp_path / "gsm8k.json").write_text(json.dumps(records))
    with pytest.raises(ProcessBenchError, match=r"gsm8k.json record 1: missing key 'label'"):
        load_split("gsm8k", data_dir=tmp_path)
    records[1]["label"] = 7
    (tmp_path / "gsm8k.json").write_text(json.dumps(records))
    with pytest.raises(ProcessBenchError, match=r"record 1: label 7 is outside -1..3"):
        load_split("gsm8k", data_dir=tmp_path)
    with pytest.raises(ProcessBenchError, match="math.json not found"):
        load_split("math", data_dir=tmp_path)
    with pytest.raises(ProcessBenchError, match="unknown split.*gsm8"):
        ProcessBenchConfig(ppm="x", splits="gsm8")


@pytest.fixture(scope="module")
def ppm_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A PPM export of the tiny model with a seeded random value head."""
    from transformers import AutoTokenizer

    from modules.export import export_ppm
    from modules.value_model import ValueHeadModel

    model = ValueHeadModel.from_backbone(str(tiny_model_dir))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.nn.init.normal_(model.value_head.weight, std=1.0)
    out = tmp_path_factory.mktemp("models") / "ppm"
    return export_ppm(model, AutoTokenizer.from_pretrained(tiny_model_dir), out)


def test_command_scores_every_prefix_with_the_ppm(ppm_dir, pb_dir, tmp_path):
    """The command's scores are the PPM's values of the rendered prefixes, scored one by one
    here, and its summary is the metric of those scores."""
    from rstar_pl.backends.ppm import PPMScorer

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(pb_dir / "math.json", data / "math.json")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "processbench",
            "--ppm",
            str(ppm_dir),
            "--splits",
            "math",
            "--data-dir",
            str(data),
            "--out",
            str(out),
            "--batch-size",
            "5",
            "--device",
            "cpu",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "| threshold 0 |" in proc.stdout and "results in" in proc.stdout
    rows = [json.loads(line) for line in (out / "scores-math.jsonl").read_text().splitlines()]
    records = load_split("math", data_dir=data)
    alone = PPMScorer.from_path(ppm_dir, device="cpu", batch_size=1)
    for row, record in zip(rows, records):
        assert row["id"] == record.id
        assert row["scores"] == pytest.approx(alone.score(step_prefixes(record)), abs=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    expected = score_split([r["scores"] for r in rows], [r["label"] for r in rows], 0.0)
    assert summary["protocols"]["fixed"]["math"]["f1"] == pytest.approx(expected.f1)
    assert "transfer" not in summary["protocols"]  # no gsm8k split to tune on


def test_command_line_errors_are_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "processbench",
            "--ppm",
            str(tmp_path),
            "--splits",
            "gsm8k",
            "--data-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness processbench: error: ProcessBench file {tmp_path}/gsm8k.json not found; "
        "--data-dir must hold <split>.json files (gsm8k, math, olympiadbench, omnimath)"
    ]
