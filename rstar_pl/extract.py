"""`python -m rstar_pl extract --trees FILES... --out DIR`: training data from trees.

What the outputs hold is `rstar_pl.data.extraction`'s docstring.

Input and output (`read_trees`, `write_outputs`): every tree counts once. A
tree is identified by (problem_id, attempt, seed); a tree met again (the same
file given twice, a folder two runs wrote into) is skipped with a warning, so
it cannot double its problem's pairs or difficulty counts. Finding no trees is
an error, and the outputs (report.json too) are replaced together or not at all
(`rstar_pl.files.replace_together`): a failed run leaves the previous data as
it was.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from rstar_pl.data.extraction import ExtractConfig, ExtractError, extract_with_report, format_report
from rstar_pl.data.records import record_lines
from rstar_pl.data.trees import iter_tree_records, tree_files
from rstar_pl.files import replace_together
from rstar_pl.search.tree import Tree

__all__ = ["ExtractPaths", "main", "parse_args", "read_trees", "write_outputs"]

log = logging.getLogger("rstar_pl.extract")


def _files_of(given: str) -> list[Path]:
    """The tree files of one --trees argument; none there is an error that says where
    trees are when they are one folder down (the parent of `trees/` was given)."""
    found = tree_files([given])
    if found:
        return found
    hint = ""
    folder = Path(given)
    if folder.is_dir():
        below = sorted({p.parent for p in folder.glob("*/trees-*.jsonl")})
        if below:
            hint = f"; did you mean {', '.join(map(str, below))}?"
    raise ExtractError(f"--trees {given}: no trees-*.jsonl files there{hint}")


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def read_trees(paths: Sequence[str]) -> list[Tree]:
    """Every tree of the files and folders once, in order of first appearance
    (identity: problem_id, attempt, seed; see the module docstring)."""
    files: dict[Path, Path] = {}
    for path in (f for given in paths for f in _files_of(given)):
        if path.resolve() in files:
            log.warning("extract: %s is given more than once; reading it once", path)
        files.setdefault(path.resolve(), path)
    from tqdm.auto import tqdm

    trees: list[Tree] = []
    first_seen: dict[tuple[str, int, int], str] = {}
    duplicates: list[str] = []
    # one tree per line: counting newlines (fast, and it warms the page cache) gives the total
    total = sum(_count_lines(path) for path in files.values())
    records = tqdm(
        iter_tree_records(files.values()),
        total=total,
        desc="reading trees",
        unit="tree",
        disable=None,
    )
    for record, where in records:
        tree = Tree.from_record(record, where)
        key = (tree.problem_id, tree.attempt, tree.seed)
        if key in first_seen:
            duplicates.append(
                f"{key[0]} attempt {key[1]} seed {key[2]} at {where} (first at {first_seen[key]})"
            )
            continue
        first_seen[key] = where
        trees.append(tree)
    if not trees:
        raise ExtractError(f"no trees in {', '.join(map(str, files.values()))}")
    if duplicates:
        log.warning(
            "extract: skipped %d duplicate trees (same problem, attempt and seed): %s%s",
            len(duplicates),
            "; ".join(duplicates[:3]),
            f"; and {len(duplicates) - 3} more" if len(duplicates) > 3 else "",
        )
    return trees


def write_outputs(out: Path, data: dict[str, list[dict]], report: dict | None = None) -> None:
    """Replace `out/<name>.jsonl` for every output in `data` (its lines as
    `rstar_pl.data.records` writes them, schema first) and `out/report.json` with
    `report`, all together."""
    out.mkdir(parents=True, exist_ok=True)
    files = {out / f"{name}.jsonl": record_lines(name, records) for name, records in data.items()}
    if report is not None:
        files[out / "report.json"] = [json.dumps(report, indent=1) + "\n"]
    replace_together(files)


@dataclass
class ExtractPaths:
    """Where `extract` reads trees and writes its outputs (the rest is `ExtractConfig`)."""

    trees: list[str]
    """Tree files (trees-*.jsonl) or folders of shards; one or more."""
    out: str
    """Output folder."""


def parse_args(argv: list[str]) -> tuple[ExtractPaths, ExtractConfig]:
    """(paths, config) from the command line: `ExtractPaths` and `ExtractConfig` fields."""
    from rstar_pl.cli import config_parser, parse_command_line

    parser = config_parser(
        ExtractPaths,
        ExtractConfig,
        prog="rstar-pl extract",
        several=("trees",),
        description="SFT records, PPM pairs, Q-labelled steps, outcomes and difficulty from "
        "tree files.",
    )
    values = vars(parse_command_line(parser, argv))
    paths = ExtractPaths(**{f.name: values.pop(f.name) for f in fields(ExtractPaths)})
    return paths, ExtractConfig(**values)


def main(argv: list[str]) -> int:
    paths, config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    data, report = extract_with_report(read_trees(paths.trees), config)
    out = Path(paths.out)
    write_outputs(out, data, report)
    levels = [d["difficulty"] for d in data["difficulty"]]
    print(
        f"extract: {len(levels)} problems (easy {levels.count('easy')}, medium "
        f"{levels.count('medium')}, hard {levels.count('hard')}), {len(data['sft'])} SFT records, "
        f"{len(data['pairs'])} pairs -> {out}"
    )
    print(format_report(report))
    return 0
