"""`harness processbench`: how well a PPM finds the first wrong step of a solution.

ProcessBench (Zheng et al., 2024; hub id `Qwen/ProcessBench`, one config per
split, split `test`) gives competition problems with a model-written solution
cut into steps and the index of the first wrong step (-1 when every step is
right). The PPM scores every step prefix, question plus steps 0..i, all
prefixes of many samples in one batched `Scorer.score` call at a time; the
metric and the three threshold protocols are `harness.step_errors`.

How a ProcessBench solution is put into our step format
--------------------------------------------------------
Our PPM was trained on partial trajectories `build_prompt(question) + steps`,
each step being reasoning as Python comments plus code, ending in
`<end_of_step>`. ProcessBench steps are prose, so step k (0-based) becomes a
comment-only step, written exactly as our policies write a step::

    <code>                      (step 0 only: the code block opens once)
    # Step {k+1}: {first line of the step}
    # {each further line}       (an empty line becomes "#")
    <end_of_step>

with every step after the first starting on a new line, as in training data.
So the prefix the PPM judges at step k is `build_prompt(problem)` followed by
steps 0..k, and its last token is the `<end_of_step>` the value head was
trained to read. There is no code and no `<output>` block: a PPM trained only
on code steps sees text in its format but without the code that its training
steps carried, one reason a ProcessBench score measures transfer, not the
in-domain ranking the PPM was trained for.

Files in `--out`: `scores-<split>.jsonl` (per sample: id, label, step scores;
appended batch by batch, so an interrupted run resumes without scoring a
sample twice), `config.json`, `summary.json` (every protocol, every split) and
`table.md`. A resume with another PPM or scoring setting is refused unless
`--overwrite` is given. One run writes an `--out` at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report import changed_setting
from harness.step_errors import SplitScore, threshold_protocols
from rstar_pl.backends.base import Scorer
from rstar_pl.errors import UserError
from rstar_pl.files import append_jsonl, iter_jsonl, read_utf8, write_atomic, write_json
from rstar_pl.steps import CODE, END_OF_STEP, build_prompt

__all__ = [
    "HUB_ID",
    "SPLITS",
    "ProcessBenchConfig",
    "ProcessBenchError",
    "ProcessBenchRecord",
    "format_table",
    "load_split",
    "render_step",
    "run_processbench",
    "score_records",
    "step_prefixes",
]

HUB_ID = "Qwen/ProcessBench"
SPLITS = ("gsm8k", "math", "olympiadbench", "omnimath")

#: Settings that change the scores; a resume requires them unchanged.
_SCORING_KEYS = ("ppm", "max_length", "dtype", "revision")


class ProcessBenchError(UserError):
    """A ProcessBench file, record or setting that cannot be used."""


@dataclass(frozen=True)
class ProcessBenchRecord:
    """One sample: a solution in steps and the index of its first wrong step (-1: none)."""

    id: str
    problem: str
    steps: tuple[str, ...]
    label: int


@dataclass
class ProcessBenchConfig:
    """Everything `harness processbench` needs; the CLI flags map one to one."""

    ppm: str
    """The PPM: an export folder or a Lightning .ckpt of a PPMModule."""
    splits: str | list[str] = field(default_factory=lambda: list(SPLITS))
    """ProcessBench splits to score: a list, or one string of comma-separated names."""
    data_dir: str | None = None
    """Folder with <split>.json files (the GitHub copy); default: the hub."""
    revision: str | None = None
    """Hub revision of Qwen/ProcessBench (pin it to quote numbers)."""
    out: str = "runs/processbench"
    """Output folder."""
    limit: int | None = None
    """N samples of each split, erroneous and correct ones in the split's shares (`_limited`)."""
    tune_on: str = "gsm8k"
    """The split whose best threshold the transfer protocol applies to all."""
    batch_size: int = 64
    """Step prefixes per PPM forward pass."""
    max_length: int = 4096
    """Tokens kept per prefix (cut from the left, as in training)."""
    device: str | None = None
    """Torch device; default: CUDA when available, else CPU."""
    dtype: str = "float32"
    """Torch dtype of the PPM's weights."""
    overwrite: bool = False
    """Discard scores already in --out instead of resuming."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if isinstance(self.splits, str):
            self.splits = [s.strip() for s in self.splits.split(",") if s.strip()]
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or not self.splits:
            raise ProcessBenchError(
                f"--splits {','.join(self.splits) or '(empty)'}: unknown "
                f"split(s) {', '.join(unknown) or '(none given)'}; "
                f"allowed: {', '.join(SPLITS)}"
            )
        if len(set(self.splits)) != len(self.splits):
            raise ProcessBenchError(f"--splits {','.join(self.splits)}: a split is repeated")
        for name in ("batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ProcessBenchError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.limit is not None and self.limit < 1:
            raise ProcessBenchError(f"--limit must be >= 1, got {self.limit}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _record(raw: object, where: str) -> ProcessBenchRecord:
    if not isinstance(raw, dict):
        raise ProcessBenchError(
            f"{where}: a record must be a JSON object, got {type(raw).__name__}"
        )
    for key, kind in (("id", str), ("problem", str), ("steps", list), ("label", int)):
        if key not in raw:
            raise ProcessBenchError(f"{where}: missing key {key!r} (keys present: {sorted(raw)})")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise ProcessBenchError(
                f"{where}: key {key!r} is {type(raw[key]).__name__}; expected {kind.__name__}"
            )
    steps = raw["steps"]
    if not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ProcessBenchError(f"{where}: 'steps' must be a non-empty list of non-empty strings")
    if not -1 <= raw["label"] < len(steps):
        raise ProcessBenchError(
            f"{where}: label {raw['label']} is outside -1..{len(steps) - 1} "
            f"(-1: no wrong step; else the index of the first wrong one)"
        )
    if not raw["problem"].strip():
        raise ProcessBenchError(f"{where}: 'problem' is empty")
    return ProcessBenchRecord(raw["id"], raw["problem"], tuple(steps), raw["label"])


def _load_local(path: Path) -> list[object]:
    if not path.is_file():
        raise ProcessBenchError(
            f"ProcessBench file {path} not found; --data-dir must hold "
            f"<split>.json files ({', '.join(SPLITS)})"
        )
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        raise ProcessBenchError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, list):
        raise ProcessBenchError(
            f"{path}: expected a JSON list of records, got {type(data).__name__}"
        )
    return data


def _load_hub(split: str, revision: str | None) -> list[object]:
    import datasets

    try:
        rows = datasets.load_dataset(HUB_ID, split, split="test", revision=revision)
    except Exception as err:  # network, offline mode, unknown revision: say which and why
        raise ProcessBenchError(
            f"could not load {HUB_ID} config {split!r} from the hub "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "give --data-dir with a local copy"
        ) from None
    return [dict(row) for row in rows]


def load_split(
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    revision: str | None = None,
) -> list[ProcessBenchRecord]:
    """The samples of one split: `data_dir/<split>.json` when a folder is given, else
    the hub. Every record is checked; a bad one is named by file and position."""
    if split not in SPLITS:
        raise ProcessBenchError(
            f"unknown ProcessBench split {split!r}; allowed: {', '.join(SPLITS)}"
        )
    if data_dir is not None:
        path = Path(data_dir) / f"{split}.json"
        raw, source = _load_local(path), str(path)
    else:
        raw, source = _load_hub(split, revision), f"{HUB_ID}:{split}"
    records = [_record(r, f"{source} record {i}") for i, r in enumerate(raw)]
    seen: set[str] = set()
    for i, r in enumerate(records):
        if r.id in seen:
            raise ProcessBenchError(f"{source} record {i}: id {r.id!r} appears twice")
        seen.add(r.id)
    return records if limit is None else _limited(records, limit)


def _limited(records: list[ProcessBenchRecord], limit: int) -> list[ProcessBenchRecord]:
    """`limit` samples with the split's share of erroneous ones: the first of each kind in
    file order. (The released files list every erroneous sample before the correct ones, so
    their first N alone would hold no correct sample and no F1.)"""
    if limit >= len(records):
        return records
    erroneous = [r for r in records if r.label >= 0]
    correct = [r for r in records if r.label < 0]
    wanted = round(limit * len(erroneous) / len(records))
    if erroneous and correct and limit >= 2:
        wanted = min(max(wanted, 1), limit - 1)  # at least one of each kind
    keep = {r.id for r in erroneous[:wanted] + correct[: limit - wanted]}
    return [r for r in records if r.id in keep]


def render_step(k: int, text: str) -> str:
    """ProcessBench step k (0-based) as a comment-only step of our format (module doc)."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    body = [f"# Step {k + 1}: {lines[0]}"] + [f"# {line}" if line else "#" for line in lines[1:]]
    lead = CODE + "\n" if k == 0 else "\n"
    return lead + "\n".join(body) + "\n" + END_OF_STEP


def step_prefixes(record: ProcessBenchRecord) -> list[str]:
    """The text the PPM scores after each step: prompt + steps 0..i, for every i."""
    text = build_prompt(record.problem)
    out = []
    for k, step in enumerate(record.steps):
        text += render_step(k, step)
        out.append(text)
    return out


def score_records(
    records: Sequence[ProcessBenchRecord],
    scorer: Scorer,
    *,
    batch_size: int = 64,
    on_batch: Callable[[list[ProcessBenchRecord], list[list[float]]], None] | None = None,
) -> list[list[float]]:
    """Per record, the PPM score of every step prefix.

    Prefixes of consecutive records are pooled into calls of about `batch_size`
    texts (a record's prefixes never split across calls, so `on_batch` sees whole
    records: the resume unit)."""
    out: list[list[float]] = []
    start = 0
    while start < len(records):
        end, texts = start, []
        while end < len(records) and (
            not texts or len(texts) + len(records[end].steps) <= batch_size
        ):
            texts.extend(step_prefixes(records[end]))
            end += 1
        values = [float(v) for v in scorer.score(texts)]
        if len(values) != len(texts):
            raise ValueError(f"scorer returned {len(values)} values for {len(texts)} texts")
        chunk, pos = [], 0
        for record in records[start:end]:
            chunk.append(values[pos : pos + len(record.steps)])
            pos += len(record.steps)
        if on_batch is not None:
            on_batch(list(records[start:end]), chunk)
        out.extend(chunk)
        start = end
    return out


def _read_scores(path: Path) -> dict[str, dict[str, Any]]:
    """Whole lines of a scores file by id (a line cut short by a crash is dropped)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for row, _ in iter_jsonl(path, error=ProcessBenchError):
        if isinstance(row.get("scores"), list):
            done[str(row["id"])] = row
    return done


def _check_resume(out: Path, config: ProcessBenchConfig) -> None:
    if config.overwrite:
        return
    current = {key: getattr(config, key) for key in _SCORING_KEYS}
    changed = changed_setting(out / "config.json", current, _SCORING_KEYS)
    if changed is not None:
        key, before, now = changed
        raise ProcessBenchError(
            f"{out} holds scores made with {key}={before!r}, not {now!r}; "
            "use another --out or pass --overwrite to start over"
        )


def _make_scorer(config: ProcessBenchConfig) -> Scorer:
    from rstar_pl.backends.ppm import PPMScorer

    return PPMScorer.from_path(
        config.ppm,
        dtype=config.dtype,
        device=config.device,
        batch_size=config.batch_size,
        max_length=config.max_length,
    )


def _score_split(
    split: str,
    records: list[ProcessBenchRecord],
    scorer: Scorer,
    config: ProcessBenchConfig,
    out: Path,
) -> list[list[float]]:
    """Scores of every record of a split, resuming from its scores file."""
    from tqdm.auto import tqdm

    path = out / f"scores-{split}.jsonl"
    done = _read_scores(path)
    todo = [r for r in records if r.id not in done]
    bar = tqdm(
        total=len(records),
        initial=len(records) - len(todo),
        desc=split,
        unit="sample",
        disable=not config.progress,
        leave=False,
    )

    def save(batch: list[ProcessBenchRecord], scores: list[list[float]]) -> None:
        rows = [{"id": r.id, "label": r.label, "scores": s} for r, s in zip(batch, scores)]
        append_jsonl(path, rows)
        done.update((row["id"], row) for row in rows)
        bar.update(len(batch))

    try:
        score_records(todo, scorer, batch_size=config.batch_size, on_batch=save)
    finally:
        bar.close()
    for r in records:
        if len(done[r.id]["scores"]) != len(r.steps):
            raise ProcessBenchError(
                f"{path}: sample {r.id} has {len(done[r.id]['scores'])} "
                f"scores for {len(r.steps)} steps; pass --overwrite"
            )
    return [done[r.id]["scores"] for r in records]


def format_table(protocols: dict[str, dict[str, SplitScore]], *, tune_on: str = "gsm8k") -> str:
    """Markdown: one row per protocol and split (error acc., correct acc., F1), and the
    mean F1 of each protocol."""
    labels = {
        "fixed": "threshold 0",
        "transfer": f"threshold tuned on {tune_on}",
        "oracle": "best threshold per split (upper bound)",
    }
    splits = list(next(iter(protocols.values())))
    lines = [
        "| protocol | " + " | ".join(splits) + " | mean F1 |",
        "|---|" + "---|" * (len(splits) + 1),
    ]
    for key, per_split in protocols.items():
        cells = [
            f"{100 * s.f1:.1f} ({100 * s.error_acc:.1f} / {100 * s.correct_acc:.1f}, "
            f"t={s.threshold:+.3f})"
            for s in per_split.values()
        ]
        mean = 100 * sum(s.f1 for s in per_split.values()) / len(per_split)
        lines.append(f"| {labels[key]} | " + " | ".join(cells) + f" | {mean:.1f} |")
    lines.append("")
    lines.append(
        "Each cell: F1 (accuracy on erroneous samples / on correct samples, threshold), in percent."
    )
    return "\n".join(lines) + "\n"


def run_processbench(config: ProcessBenchConfig, *, scorer: Scorer | None = None) -> dict[str, Any]:
    """Score the splits, compute the three protocols, write the files; returns the summary."""
    from rstar_pl.files import exclusive_output

    # Read every split first: a bad file fails before the PPM is loaded.
    data = {
        s: load_split(s, data_dir=config.data_dir, limit=config.limit, revision=config.revision)
        for s in config.splits
    }
    out = Path(config.out)
    with exclusive_output(out, "processbench", what="--out"):
        _check_resume(out, config)
        if config.overwrite:
            for split in SPLITS:
                (out / f"scores-{split}.jsonl").unlink(missing_ok=True)
        if scorer is None:
            scorer = _make_scorer(config)
        write_json(out / "config.json", config.to_dict())
        scores = {s: _score_split(s, data[s], scorer, config, out) for s in config.splits}
        protocols = threshold_protocols(
            {s: (scores[s], [r.label for r in data[s]]) for s in config.splits},
            tune_on=config.tune_on,
        )
        summary = {
            "ppm": config.ppm,
            "source": config.data_dir or f"{HUB_ID}@{config.revision or 'main'}",
            "samples": {s: len(data[s]) for s in config.splits},
            "protocols": {
                key: {s: v.to_dict() for s, v in per.items()} for key, per in protocols.items()
            },
            "mean_f1": {
                key: sum(v.f1 for v in per.values()) / len(per) for key, per in protocols.items()
            },
        }
        write_json(out / "summary.json", summary)
        write_atomic(out / "table.md", format_table(protocols, tune_on=config.tune_on))
    return summary
