"""What a self-evolution run writes for people: `round<k>/report.md`, `summary.md`, `summary.json`.

Everything is read back from the files the stages left (difficulty labels,
training records, TensorBoard logs, the held-out evaluation), so a report can
be rebuilt at any time and says only what the files say.

- Coverage: training problems with at least one correct trajectory
  (difficulty easy or medium) out of all, per level where problems have one.
- Held-out: accuracy of greedy decoding, of the majority vote over N samples
  and of PPM-guided MCTS with N rollouts, with the number of problems, per
  level, and the tokens each generated per problem; the PPM's pairwise
  accuracy on held-out pairs, with their number.
"""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

from rstar_pl.data.records import read_difficulty, read_records
from rstar_pl.files import write_atomic, write_json

__all__ = ["last_scalars", "round_summary", "write_round_report", "write_summary"]

_METHODS = (("greedy", "greedy"), ("vote", "majority vote"), ("mcts", "PPM-guided MCTS"))


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of an extractor output (none when the stage has not written it)."""
    return read_records(path) if path.is_file() else []


def coverage(folder: Path, levels: dict[str, Any]) -> dict[str, list[int]]:
    """{level or "all": [solved, problems]} from the round's difficulty.jsonl."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    path = folder / "difficulty.jsonl"
    for record in read_difficulty(path) if path.is_file() else []:
        solved = int(record["difficulty"] != "hard")
        level = levels.get(str(record["problem_id"]))
        for key in ["all"] + ([str(level)] if level is not None else []):
            table[key][0] += solved
            table[key][1] += 1
    return dict(sorted(table.items()))


def last_scalars(log_dir: Path) -> dict[str, float]:
    """The last value of every scalar in the newest TensorBoard run under `log_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = (
        sorted(log_dir.glob("version_*"), key=lambda p: p.stat().st_mtime)
        if log_dir.is_dir()
        else []
    )
    if not runs:
        return {}
    events = EventAccumulator(str(runs[-1]), size_guidance={"scalars": 0})
    events.Reload()
    out = {}
    for tag in events.Tags().get("scalars", []):
        values = events.Scalars(tag)
        if values:
            out[tag] = float(values[-1].value)
    return out


def round_summary(folder: Path, k: int, levels: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one round (the row of the summary, the body of its report)."""
    pairs = _records(folder / "pairs.jsonl")
    summary: dict[str, Any] = {
        "round": k,
        "coverage": coverage(folder, levels),
        "records": {
            "sft": len(_records(folder / "sft.jsonl")),
            "pairs": len(pairs),
            "step_pairs": sum(1 for p in pairs if p.get("kind") == "step"),
        },
        "training": {stage: last_scalars(folder / "logs" / stage) for stage in ("policy", "ppm")},
    }
    results = folder / "eval" / "results.json"
    if results.is_file():
        summary["heldout"] = json.loads(results.read_text(encoding="utf-8"))
    return summary


def _fraction(correct_count: list[int] | None) -> str:
    if not correct_count or not correct_count[1]:
        return "-"
    correct, count = correct_count
    return f"{correct}/{count} ({100 * correct / count:.0f}%)"


def _levels_of(table: dict[str, list[int]]) -> list[str]:
    return [key for key in table if key != "all"]


def _round_markdown(summary: dict[str, Any]) -> str:
    k = summary["round"]
    lines = [f"# Round {k}", "", "## Generation coverage (training problems solved)", ""]
    cov = summary["coverage"]
    levels = _levels_of(cov)
    lines += [
        "| " + " | ".join(["all", *[f"level {lv}" for lv in levels]]) + " |",
        "|" + "---|" * (1 + len(levels)),
        "| " + " | ".join(_fraction(cov.get(key)) for key in ["all", *levels]) + " |",
        "",
    ]
    records = summary["records"]
    lines += [
        "## Training data",
        "",
        f"{records['sft']} SFT records, {records['pairs']} PPM pairs "
        f"({records['step_pairs']} per step, {records['pairs'] - records['step_pairs']} "
        "final-answer).",
        "",
    ]
    lines += ["## Last training metrics", ""]
    for stage, scalars in summary["training"].items():
        shown = ", ".join(
            f"{tag} {value:.4g}"
            for tag, value in sorted(scalars.items())
            if not tag.startswith(("lr-", "epoch"))
        )
        lines.append(f"- {stage}: {shown or 'no logs'}")
    lines.append("")
    held = summary.get("heldout")
    if held:
        methods = held["methods"]
        levels = _levels_of(next(iter(methods.values()))["by_level"])
        lines += [
            f"## Held-out problems ({held['problems']})",
            "",
            "| method | all | "
            + " | ".join(f"level {lv}" for lv in levels)
            + " | tokens/problem |",
            "|" + "---|" * (3 + len(levels)),
        ]
        for key, title in _METHODS:
            if key in methods:
                m = methods[key]
                cells = [_fraction(m["by_level"].get(lv)) for lv in ["all", *levels]]
                lines.append(
                    f"| {title} | " + " | ".join(cells) + f" | {m['tokens_per_problem']:.0f} |"
                )
        pairs = held.get("ppm_pairs")
        if pairs:
            accuracy = "-" if pairs["accuracy"] is None else f"{100 * pairs['accuracy']:.0f}%"
            lines += ["", f"PPM pairwise accuracy on {pairs['pairs']} held-out pairs: {accuracy}"]
        lines.append("")
    return "\n".join(lines)


def write_round_report(folder: Path, k: int, *, levels: dict[str, Any]) -> Path:
    """Write `folder/report.md`; return its path."""
    path = folder / "report.md"
    write_atomic(path, _round_markdown(round_summary(folder, k, levels)))
    return path


def _summary_table(rounds: list[dict[str, Any]]) -> str:
    levels = sorted({lv for r in rounds for lv in _levels_of(r["coverage"])})
    evaluated = [r["heldout"] for r in rounds if "heldout" in r]
    head = ["round"]
    if evaluated:
        n = evaluated[-1].get("trajectories")
        at = f" @{n}" if n else ""
        head += ["greedy", f"majority vote{at}", f"PPM-guided MCTS{at}", "PPM pair acc."]
    head += ["coverage", *[f"coverage level {lv}" for lv in levels]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rounds:
        cells = [str(r["round"])]
        if evaluated:
            methods = r.get("heldout", {}).get("methods", {})
            cells += [
                _fraction(methods.get(m, {}).get("by_level", {}).get("all")) for m, _ in _METHODS
            ]
            pairs = r.get("heldout", {}).get("ppm_pairs") or {}
            cells.append(
                "-"
                if pairs.get("accuracy") is None
                else f"{100 * pairs['accuracy']:.0f}% of {pairs['pairs']}"
            )
        cells += [_fraction(r["coverage"].get(key)) for key in ["all", *levels]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_summary(run: Path, rounds: int, *, levels: dict[str, Any]) -> str:
    """Write `summary.md` and `summary.json` for the rounds that have a folder; return the
    markdown table."""
    rows = [
        round_summary(run / f"round{k}", k, levels)
        for k in range(1, rounds + 1)
        if (run / f"round{k}").is_dir()
    ]
    state = run / "evolve_state.json"
    stages = json.loads(state.read_text(encoding="utf-8"))["stages"] if state.is_file() else {}
    seconds = sum(s.get("seconds", 0.0) for s in stages.values())
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    table = _summary_table(rows)
    text = (
        f"# {run.name}: self-evolution summary\n\n{table}\n\n"
        "Held-out columns: problems answered correctly out of the held-out split (never "
        "trained on); majority vote and MCTS sample the same number of trajectories per "
        "problem (see each round's report.md for levels and tokens). Coverage: training "
        "problems with a correct trajectory in the round's trees.\n\n"
        f"Stage time {seconds:.0f} s on {machine}.\n"
    )
    write_atomic(run / "summary.md", text)
    write_json(
        run / "summary.json",
        {
            "rounds": rows,
            "stage_seconds": {name: s.get("seconds") for name, s in stages.items()},
            "machine": machine,
        },
        indent=1,
    )
    return table
