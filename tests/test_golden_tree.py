"""The search, pinned: `generate` on three scripted problems must write exactly the
tree files in `tests/data/golden/`, node for node and float for float.

A refactor that moves code must leave these files unchanged. A change that is
*meant* to move the search (a new selection rule, another default) regenerates
them on purpose, and says so in its commit:

    python -m rstar_pl generate --config configs/search/scripted.yaml \
        --out_dir /tmp/golden --problems.limit 3 --sandbox '{"timeout": 120}'
    python tests/test_golden_tree.py /tmp/golden tests/data/golden/terminal.jsonl

(and the same with `scripted_ppm.yaml` into `ppm.jsonl`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rstar_pl.generate import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def canonical_lines(folder: Path) -> list[str]:
    """Every tree line of a folder's shards with sorted keys, in a fixed order."""
    lines = []
    for shard in sorted(folder.glob("trees-*.jsonl")):
        lines += [json.dumps(json.loads(x), sort_keys=True) for x in shard.read_text().splitlines()]
    return sorted(lines)


@pytest.mark.parametrize(
    "config, golden",
    [("scripted.yaml", "terminal.jsonl"), ("scripted_ppm.yaml", "ppm.jsonl")],
    ids=["terminal-guided", "ppm-initialised"],
)
def test_generate_writes_the_golden_trees(tmp_path, config, golden):
    out = tmp_path / "trees"
    argv = [
        "--config",
        str(ROOT / "configs" / "search" / config),
        "--out_dir",
        str(out),
        "--problems.limit",
        "3",
        # generous: a step must never time out on a loaded machine (that changes the tree)
        "--sandbox",
        '{"timeout": 120}',
    ]
    assert main(argv) == 0
    expected = (GOLDEN / golden).read_text().splitlines()
    got = canonical_lines(out)
    assert len(got) == len(expected)
    for line, want in zip(got, expected):
        assert json.loads(line) == json.loads(want)


if __name__ == "__main__":  # regenerate: python tests/test_golden_tree.py TREES_DIR OUT_FILE
    Path(sys.argv[2]).write_text("\n".join(canonical_lines(Path(sys.argv[1]))) + "\n")
