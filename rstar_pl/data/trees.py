"""Tree files: JSONL, one finished tree per line, in shards, resumable.

A generation run writes `trees-SSSSS-of-NNNNN.jsonl` files in its output folder
(shard S of N: the problems whose position modulo N is S, so several processes
or machines write independently and a lost one loses no finished tree). Each
tree is appended as soon as it is finished, as one `write` of the whole line
followed by flush and fsync, so a crash leaves at most one torn last line; the
next open of the shard truncates it. On restart, the finished (problem_id,
attempt) pairs found in the folder are skipped, so no tree is ever written
twice.

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

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.search.tree import Tree

__all__ = [
    "TreeFileError",
    "TreeWriter",
    "finished_trees",
    "iter_tree_records",
    "load_trees",
    "repair_tail",
    "shard_path",
    "tree_files",
]

log = logging.getLogger(__name__)


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


def repair_tail(path: Path) -> int:
    """Truncate a torn last line (one without its newline) left by a crash;
    return how many bytes were dropped."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # walk back to the last newline, in blocks
        end, keep = size, 0
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning(
        "%s: dropped a torn last line (%d bytes) left by an interrupted run", path, size - keep
    )
    return size - keep


def iter_tree_records(paths: Iterable[str | Path]) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, "file:line") of every tree in the files/folders, in order. A
    torn last line (no newline, not JSON) is skipped with a warning; any other
    bad line is an error."""
    from rstar_pl.files import not_utf8

    for path in tree_files(paths):
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise not_utf8(path, err, number) from None
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    if not line.endswith("\n"):
                        log.warning("%s: ignoring a torn last line", where)
                        continue
                    raise TreeFileError(f"{where}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise TreeFileError(f"{where}: a tree line must be a JSON object")
                yield record, where


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
    """Appends finished trees to one shard file, one line per tree, durably."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, tree: Tree | dict[str, Any]) -> None:
        record = tree.to_record() if isinstance(tree, Tree) else tree
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        # One write of the whole line: with O_APPEND the line lands at the end in
        # one piece; a short write (disk full, signal) is finished by the loop.
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
