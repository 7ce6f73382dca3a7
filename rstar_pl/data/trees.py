"""Tree files: JSONL, one finished tree per line, in shards, resumable.

A generation run writes `trees-SSSSS-of-NNNNN.jsonl` files in its output folder
(shard S of N: the problems whose position modulo N is S, so several processes
or machines write independently and a lost one loses no finished tree). Each
tree is appended as soon as it is finished, as one `write` of the whole line
followed by fsync, so a crash leaves at most one torn last line; readers skip
it and the next open of the shard cuts it (`rstar_pl.files.jsonl`, the rule of
every JSONL file). On restart, the finished (problem_id, attempt) pairs found
in the folder are skipped, so no tree is ever written twice.

One line, schema "rstar-tree/1" (see also `rstar_pl/search/tree.py` for how Q
is defined and how a PPM prior enters visits and value_sum):

- `schema`, `problem_id`, `question`, `reference` (null at test time),
  `prompt` (the text the policy continued at the root), `seed` (this tree's
  seed, derived from the run seed, problem id and attempt), `attempt` (0 for
  the first tree of a problem; 1, 2, ... for round 4's extra trees on unsolved
  problems), `meta` (search settings: rollouts, n, c, annotation, ...);
- `nodes`: a list indexed by node id; each node has `id`, `parent` (null for
  the root), `depth`, `text` (as generated, stop string included; "" for the
  root), `kind` (`root`, `step`, `code_end`, `answer`), `output` (what the
  model sees of a `code_end` step's run, `steps.program_output`), `error` (why
  a candidate is not a valid step: its code failed or it is not well formed;
  such a child is kept for diagnosis, never explored, never visited), `terminal`
  (an answer, the depth limit, or a node whose expansions gave no valid child),
  `answer` (the final \\boxed{} answer of an answer step), `correct` (grade of
  a terminal against the reference; null when there is none), `visits`,
  `value_sum`, `prior` (the PPM value, a terminal's known outcome +1/-1 in
  PPM-augmented annotation with a reference, or null);
- `rollouts`: a list of `{"path": [node ids from the root], "reward": r}`.

Q(node) = value_sum / visits, and visits = [prior is not None] + #rollouts
through the node, value_sum = (prior or 0) + their rewards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.files.jsonl import JSONLAppender, iter_jsonl
from rstar_pl.search.tree import Tree

__all__ = [
    "TreeFileError",
    "TreeWriter",
    "finished_trees",
    "iter_tree_records",
    "load_trees",
    "shard_path",
    "tree_files",
]


class TreeFileError(UserError):
    """A tree file line that is not a valid tree record."""


def shard_path(out_dir: str | Path, shard: int, num_shards: int) -> Path:
    return Path(out_dir) / f"trees-{shard:05d}-of-{num_shards:05d}.jsonl"


def tree_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into their `trees-*.jsonl` files; keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob("trees-*.jsonl")))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"tree file or folder {p} does not exist")
    return out


def iter_tree_records(paths: Iterable[str | Path]) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, "file:line") of every tree in the files/folders, in order; a torn
    last line is skipped, any other bad line is an error (`rstar_pl.files.jsonl`)."""
    for path in tree_files(paths):
        yield from iter_jsonl(path, error=TreeFileError)


def load_trees(paths: Iterable[str | Path]) -> list[Tree]:
    return [Tree.from_record(record, where) for record, where in iter_tree_records(paths)]


def finished_trees(out_dir: str | Path) -> dict[tuple[str, int], bool]:
    """{(problem_id, attempt): solved} for every tree already in `out_dir`."""
    done: dict[tuple[str, int], bool] = {}
    folder = Path(out_dir)
    if not folder.is_dir():
        return done
    for record, where in iter_tree_records([folder]):
        try:
            key = (str(record["problem_id"]), int(record.get("attempt", 0)))
            nodes = record["nodes"]
            solved = any(nodes[r["path"][-1]]["correct"] is True for r in record["rollouts"])
        except (KeyError, IndexError, TypeError) as err:
            raise TreeFileError(f"{where}: not a tree record ({err!r})") from None
        done[key] = solved
    return done


class TreeWriter:
    """Appends finished trees to one shard file, one line per tree, durably
    (`rstar_pl.files.JSONLAppender`: a torn tail is cut on open)."""

    def __init__(self, path: str | Path) -> None:
        self._lines = JSONLAppender(path)
        self.path = self._lines.path

    def write(self, tree: Tree | dict[str, Any]) -> None:
        self._lines.write([tree.to_record() if isinstance(tree, Tree) else tree])

    def close(self) -> None:
        self._lines.close()

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
