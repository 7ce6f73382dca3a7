"""`python -m rstar_pl view TREES --problem ID --out tree.html`: one problem's trees as a page.

Reads the problem's trees from tree files or folders of shards (every attempt
of the problem: round 4 grows several), works out which nodes the training
data would use (`rstar_pl.viewer.marks`, with extract's own settings, so pass
the `--min-margin` / `--min-edit` that `extract` was run with), and writes one
self-contained static HTML file (`rstar_pl.viewer.page`): open it in any
browser, no server, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rstar_pl.errors import UserError

__all__ = ["ViewTarget", "main"]


def _problem_trees(paths: list[str], problem: str):
    """The trees of one problem, in file order; an unknown id names a few known ones."""
    from rstar_pl.data.trees import iter_tree_records
    from rstar_pl.search.tree import Tree

    found, known = [], []
    for record, where in iter_tree_records(paths):
        pid = str(record.get("problem_id"))
        if pid == problem:
            found.append(Tree.from_record(record, where))
        elif pid not in known:
            known.append(pid)
    if not found:
        import difflib

        close = difflib.get_close_matches(problem, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        listed = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise UserError(
            f"--problem {problem}: no tree of that problem in "
            f"{', '.join(paths)}{hint}; "
            f"problems there: {listed or 'none'}"
        )
    return found


@dataclass
class ViewTarget:
    """Which problem `view` shows and where the page goes (the trees are the positional
    arguments; the pair filters are `ExtractConfig`'s, as extract was run with)."""

    problem: str
    """problem_id to show."""
    out: str
    """HTML file to write."""


def main(argv: list[str]) -> int:
    from rstar_pl.cli import config_parser, parse_command_line
    from rstar_pl.data.extraction import ExtractConfig

    parser = config_parser(
        ViewTarget,
        ExtractConfig,
        prog="rstar-pl view",
        description="One problem's search trees as a self-contained HTML page: nodes with "
        "their text, output or error, visits, Q, prior and verdict; rollout paths; the SFT "
        "picks and preference pairs extract would take.",
    )
    parser.add_argument("trees", nargs="+", help="tree files (trees-*.jsonl) or their folders")
    values = vars(parse_command_line(parser, argv))
    paths = values.pop("trees")
    target = ViewTarget(values.pop("problem"), values.pop("out"))
    config = ExtractConfig(**values)

    from rstar_pl.files import write_atomic
    from rstar_pl.viewer import render_page, training_marks

    trees = _problem_trees(paths, target.problem)
    marks = training_marks(trees, config)
    out = Path(target.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the HTML file to write")
    write_atomic(out, render_page(trees, marks, source=" ".join(paths)))
    nodes = sum(len(t) for t in trees)
    print(
        f"view: problem {target.problem}: {len(trees)} tree(s), {nodes} nodes, "
        f"{len(marks.sft)} SFT picks, {len(marks.pairs)} pairs -> {out}"
    )
    return 0
