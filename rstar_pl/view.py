"""`python -m rstar_pl view TREES --problem ID --out tree.html`: one problem's trees as a page.

Reads the problem's trees from tree files or folders of shards (every attempt
of the problem: round 4 grows several), works out which nodes the training
data would use (`rstar_pl.viewer.marks`, with extract's own settings, so pass
the `--min-margin` / `--min-edit` that `extract` was run with), and writes one
self-contained static HTML file (`rstar_pl.viewer.page`): open it in any
browser, no server, no network.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["main"]


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
        raise ValueError(f"--problem {problem}: no tree of that problem in "
                         f"{', '.join(paths)}{hint}; "
                         f"problems there: {listed or 'none'}")
    return found


def main(argv: list[str]) -> int:
    from rstar_pl.cli import ArgumentParser, positive_int

    parser = ArgumentParser(
        prog="rstar-pl view",
        description="One problem's search trees as a self-contained HTML page: nodes with "
        "their text, output or error, visits, Q, prior and verdict; rollout paths; the SFT "
        "picks and preference pairs extract would take.",
    )
    parser.add_argument("trees", nargs="+", help="tree files (trees-*.jsonl) or their folders")
    parser.add_argument("--problem", required=True, help="problem_id to show")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--min-margin", type=float, default=0.0,
                        help="extract's pair filter: minimum chosen_q - rejected_q")
    parser.add_argument("--min-edit", type=int, default=0,
                        help="extract's pair filter: minimum edit distance")
    parser.add_argument("--sft-per-problem", type=positive_int, default=2)
    parser.add_argument("--pairs-per-side", type=positive_int, default=2)
    parser.add_argument("--error-pairs", action="store_true",
                        help="extract's --error-pairs: also show valid-vs-failed step pairs")
    args = parser.parse_args(argv)

    from rstar_pl.data.extraction import ExtractConfig
    from rstar_pl.files import write_atomic
    from rstar_pl.viewer import render_page, training_marks

    trees = _problem_trees(args.trees, args.problem)
    config = ExtractConfig(sft_per_problem=args.sft_per_problem,
                           pairs_per_side=args.pairs_per_side, min_margin=args.min_margin,
                           min_edit=args.min_edit, error_pairs=args.error_pairs)
    marks = training_marks(trees, config)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the HTML file to write")
    write_atomic(out, render_page(trees, marks, source=" ".join(args.trees)))
    nodes = sum(len(t) for t in trees)
    print(f"view: problem {args.problem}: {len(trees)} tree(s), {nodes} nodes, "
          f"{len(marks.sft)} SFT picks, {len(marks.pairs)} pairs -> {out}")
    return 0
