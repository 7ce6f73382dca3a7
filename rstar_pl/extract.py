"""`python -m rstar_pl extract --trees FILES... --out DIR`: training data from trees.

A *trajectory* is a distinct root-to-terminal path that some rollout took; it
is correct when its terminal's answer was graded correct. Its `mean_q` and
`min_q` are over its steps (the root excluded), Q = value_sum / visits. All
trees of one problem (round 4 may grow several) are pooled.

Outputs (JSONL, each written atomically):

- `sft.jsonl`, per problem the 2 correct trajectories with the highest mean Q
  (ties: higher min Q, then the earlier tree and node): `problem_id`,
  `question`, `response`, `mean_q`, `min_q`. `response` is the step-format text
  after the prompt (steps as generated, `<output>` blocks included), so
  `steps.build_prompt(question) + response` is the whole trajectory.
- `pairs.jsonl`, PPM preference pairs: `problem_id`, `prompt`, `chosen`,
  `rejected`, `chosen_q`, `rejected_q`, `kind`.
  * `kind: "step"`: at every node, among its children that some rollout
    visited, the up to 2 with the highest Q whose subtrees reached a correct
    answer (positives) are paired with the up to 2 with the lowest Q whose
    subtrees reached only wrong ones (negatives). `prompt` is
    `build_prompt(question)` + the shared prefix steps; `chosen` / `rejected`
    is the step text continuing it (a `<end_of_code>` step with its `<output>`
    block), so `prompt + chosen` is exactly the partial trajectory the PPM scores.
  * `kind: "final"`: whole trajectories of the problem, the 2 correct ones with
    the highest mean Q against the 2 wrong ones with the lowest mean Q;
    `prompt` is `build_prompt(question)`, `chosen` / `rejected` the responses and
    `chosen_q` / `rejected_q` their mean Q.
  Problems whose trajectories are all correct or all wrong give no pairs.
  Optional filters (the reference code uses 0.5 and 20): `--min-margin`
  (chosen_q - rejected_q) and `--min-edit` (character edit distance between
  chosen and rejected).
- `difficulty.jsonl`: `problem_id`, `difficulty` (easy: all trajectories
  correct; medium: mixed; hard: all wrong), `correct`, `wrong`.

Input and output (`read_trees`, `write_outputs`): every tree counts once. A
tree is identified by (problem_id, attempt, seed); a tree met again (the same
file given twice, a folder two runs wrote into) is skipped with a warning, so
it cannot double its problem's pairs or difficulty counts. Finding no trees is
an error, and the outputs are replaced together or not at all
(`rstar_pl.files.replace_together`): a failed run leaves the previous data as
it was.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstar_pl.files import replace_together
from rstar_pl.search.tree import Tree
from rstar_pl.steps import build_prompt, format_output
from rstar_pl.treeio import iter_tree_records, tree_files

__all__ = [
    "ExtractConfig",
    "ExtractError",
    "ScoredPath",
    "bounded_edit_distance",
    "extract",
    "main",
    "read_trees",
    "trajectories",
    "write_outputs",
]

log = logging.getLogger("rstar_pl.extract")


class ExtractError(ValueError):
    """Tree inputs that give no training data."""


@dataclass(frozen=True)
class ExtractConfig:
    """How many records per problem/step, and the optional pair filters."""

    sft_per_problem: int = 2
    pairs_per_side: int = 2
    min_margin: float = 0.0
    min_edit: int = 0


@dataclass(frozen=True)
class ScoredPath:
    """One rollout path of a tree with its Q statistics over its steps."""

    tree_index: int
    terminal: int
    response: str
    correct: bool
    mean_q: float
    min_q: float


def trajectories(tree: Tree, tree_index: int = 0) -> list[ScoredPath]:
    """The distinct rollout paths of a tree, in terminal-id order."""
    out = []
    for terminal in sorted({path[-1] for path, _ in tree.rollouts}):
        steps = tree.path(terminal)[1:]
        if not steps:
            continue
        qs = [tree.q(i) for i in steps]
        out.append(
            ScoredPath(
                tree_index,
                terminal,
                tree.response(terminal),
                tree.correct[terminal] is True,
                sum(qs) / len(qs),
                min(qs),
            )
        )
    return out


def bounded_edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of `a` and `b`, or `limit` if it is at least that.

    Only the diagonal band |i - j| < limit can hold a distance under `limit`, so
    the cost is O(len(a) * limit) rather than O(len(a) * len(b)).
    """
    if limit <= 0:
        return 0
    if abs(len(a) - len(b)) >= limit:
        return limit
    m = len(b)
    prev = [min(j, limit) for j in range(m + 1)]
    for i in range(1, len(a) + 1):
        lo, hi = max(1, i - limit + 1), min(m, i + limit - 1)
        cur = [limit] * (m + 1)
        cur[0] = min(i, limit)
        ca = a[i - 1]
        best = cur[0]
        for j in range(lo, hi + 1):
            value = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != b[j - 1]), limit)
            cur[j] = value
            best = min(best, value)
        if best >= limit:
            return limit
        prev = cur
    return min(prev[m], limit)


def _step_text(tree: Tree, node: int) -> str:
    text = tree.text[node]
    if tree.kind[node] == "code_end" and tree.output[node] is not None:
        text += format_output(tree.output[node])
    return text


def _keep(
    config: ExtractConfig, chosen: str, rejected: str, chosen_q: float, rejected_q: float
) -> bool:
    if chosen_q - rejected_q < config.min_margin:
        return False
    return (
        config.min_edit <= 0
        or bounded_edit_distance(chosen, rejected, config.min_edit) >= config.min_edit
    )


def step_pairs(tree: Tree, config: ExtractConfig) -> list[dict[str, Any]]:
    """Per-step preference pairs of one tree (see the module docstring)."""
    reached_correct = [0] * len(tree)
    reached_wrong = [0] * len(tree)
    for path, _ in tree.rollouts:
        counter = reached_correct if tree.correct[path[-1]] is True else reached_wrong
        for i in path:
            counter[i] += 1
    base = build_prompt(tree.question)
    pairs = []
    for node in range(len(tree)):
        visited = [c for c in tree.children[node] if reached_correct[c] or reached_wrong[c]]
        positives = sorted(
            (c for c in visited if reached_correct[c]), key=lambda c: (-tree.q(c), c)
        )
        negatives = sorted(
            (c for c in visited if not reached_correct[c] and reached_wrong[c]),
            key=lambda c: (tree.q(c), c),
        )
        if not positives or not negatives:
            continue
        prompt = base + tree.response(node)
        for pos in positives[: config.pairs_per_side]:
            for neg in negatives[: config.pairs_per_side]:
                chosen, rejected = _step_text(tree, pos), _step_text(tree, neg)
                if _keep(config, chosen, rejected, tree.q(pos), tree.q(neg)):
                    pairs.append(
                        {
                            "problem_id": tree.problem_id,
                            "prompt": prompt,
                            "chosen": chosen,
                            "rejected": rejected,
                            "chosen_q": tree.q(pos),
                            "rejected_q": tree.q(neg),
                            "kind": "step",
                        }
                    )
    return pairs


def _best_first(trajs: list[ScoredPath]) -> list[ScoredPath]:
    return sorted(trajs, key=lambda t: (-t.mean_q, -t.min_q, t.tree_index, t.terminal))


def extract(
    trees: Iterable[Tree], config: ExtractConfig = ExtractConfig()
) -> dict[str, list[dict]]:
    """{"sft": [...], "pairs": [...], "difficulty": [...]} records, problems in
    order of first appearance."""
    by_problem: dict[str, list[Tree]] = {}
    for tree in trees:
        by_problem.setdefault(tree.problem_id, []).append(tree)
    sft, pairs, difficulty = [], [], []
    for problem_id, group in by_problem.items():
        question = group[0].question
        trajs = [t for k, tree in enumerate(group) for t in trajectories(tree, k)]
        good = _best_first([t for t in trajs if t.correct])
        bad = [t for t in trajs if not t.correct]
        seen: set[str] = set()
        for t in good:
            if len(seen) == config.sft_per_problem:
                break
            if t.response in seen:
                continue
            seen.add(t.response)
            sft.append(
                {
                    "problem_id": problem_id,
                    "question": question,
                    "response": t.response,
                    "mean_q": t.mean_q,
                    "min_q": t.min_q,
                }
            )
        difficulty.append(
            {
                "problem_id": problem_id,
                "difficulty": "easy" if not bad else "hard" if not good else "medium",
                "correct": len(good),
                "wrong": len(bad),
            }
        )
        if not good or not bad:
            continue
        for tree in group:
            pairs.extend(step_pairs(tree, config))
        worst = sorted(bad, key=lambda t: (t.mean_q, t.min_q, t.tree_index, t.terminal))
        prompt = build_prompt(question)
        for pos in good[: config.pairs_per_side]:
            for neg in worst[: config.pairs_per_side]:
                if _keep(config, pos.response, neg.response, pos.mean_q, neg.mean_q):
                    pairs.append(
                        {
                            "problem_id": problem_id,
                            "prompt": prompt,
                            "chosen": pos.response,
                            "rejected": neg.response,
                            "chosen_q": pos.mean_q,
                            "rejected_q": neg.mean_q,
                            "kind": "final",
                        }
                    )
    return {"sft": sft, "pairs": pairs, "difficulty": difficulty}


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
    records = tqdm(iter_tree_records(files.values()), total=total, desc="reading trees",
                   unit="tree", disable=None)
    for record, where in records:
        tree = Tree.from_record(record, where)
        key = (tree.problem_id, tree.attempt, tree.seed)
        if key in first_seen:
            duplicates.append(f"{key[0]} attempt {key[1]} seed {key[2]} at {where} "
                              f"(first at {first_seen[key]})")
            continue
        first_seen[key] = where
        trees.append(tree)
    if not trees:
        raise ExtractError(f"no trees in {', '.join(map(str, files.values()))}")
    if duplicates:
        log.warning("extract: skipped %d duplicate trees (same problem, attempt and seed): %s%s",
                    len(duplicates), "; ".join(duplicates[:3]),
                    f"; and {len(duplicates) - 3} more" if len(duplicates) > 3 else "")
    return trees


def write_outputs(out: Path, data: dict[str, list[dict]]) -> None:
    """Replace `out/<name>.jsonl` for every output in `data`, all together."""
    out.mkdir(parents=True, exist_ok=True)
    replace_together({
        out / f"{name}.jsonl": (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        for name, records in data.items()
    })


def main(argv: list[str]) -> int:
    from rstar_pl.cli import ArgumentParser, positive_int

    parser = ArgumentParser(
        prog="rstar-pl extract",
        description="SFT records, PPM pairs and difficulty from tree files.",
    )
    parser.add_argument("--trees", nargs="+", required=True, help="tree files or folders of shards")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--min-margin", type=float, default=0.0, help="minimum chosen_q - rejected_q"
    )
    parser.add_argument("--min-edit", type=int, default=0, help="minimum edit distance of a pair")
    parser.add_argument("--sft-per-problem", type=positive_int, default=2)
    parser.add_argument("--pairs-per-side", type=positive_int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config = ExtractConfig(
        args.sft_per_problem, args.pairs_per_side, args.min_margin, args.min_edit
    )
    data = extract(read_trees(args.trees), config)
    out = Path(args.out)
    write_outputs(out, data)
    levels = [d["difficulty"] for d in data["difficulty"]]
    print(
        f"extract: {len(levels)} problems (easy {levels.count('easy')}, medium "
        f"{levels.count('medium')}, hard {levels.count('hard')}), {len(data['sft'])} SFT records, "
        f"{len(data['pairs'])} pairs -> {out}"
    )
    return 0
