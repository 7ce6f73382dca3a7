"""The search tree: flat, integer-indexed node arrays for one problem.

Node 0 is the root (the prompt). Every other node is one generated step. Nodes
live in parallel Python lists indexed by node id (`parent[i]`, `text[i]`,
`visits[i]`, ...), children are lists of ids, and nothing holds a reference to
another node object, so a tree is cheap to walk, to copy and to write out.
Backup walks the parent array in a loop.

Q-values and the prior
----------------------
`Q(i) = value_sum[i] / visits[i]`. A node created with a prior `p` starts with
one pseudo-visit worth `p`: `visits = 1`, `value_sum = p`. The prior is
`q^0 = PPM(prefix)` in PPM-augmented annotation, except for a terminal whose
outcome is already known, which starts from it: with a reference answer, an
answer terminal's prior is its graded reward +1 / -1 and another terminal's
(depth limit, no answer) is -1. A node without a prior starts at
`visits = 0`, `value_sum = 0`. Each rollout (a root-to-terminal `path` with a
`reward`) then adds 1 to `visits` and `reward` to `value_sum` of every node on
its path. Hence, for every node::

    visits    = [prior is not None] + #rollouts whose path contains the node
    value_sum = (prior or 0)        + sum of those rollouts' rewards

which is how anyone can recompute every Q of a tree file from its rollouts
(`recompute_statistics` does it, and a test checks it).

Error children and closed nodes
-------------------------------
A candidate step whose program fails (or that is not a well-formed step) is
kept as a child with its `error` text, for diagnostics, but it is not part of
the search: it is never selected, never a rollout's leaf, so it adds nothing to
any ancestor's visits or value, and it gets no prior. A node whose expansion
left it no valid child is terminal ("no valid child",
`end_without_valid_child`). A node is *closed* when selection has nothing left
to find in it: a terminal some rollout has reached (its outcome is known), or a
node whose children are all errors or closed. Closing propagates upward at
each backup; a closed root means the tree is exhausted. `closed` is not
written to the file: it follows from the nodes and rollouts.

The tree-file record (`to_record`, schema "rstar-tree/1") is described in
`rstar_pl/data/trees.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.steps import Step

__all__ = ["NODE_KINDS", "ROOT", "SCHEMA", "Tree", "TreeRecordError", "recompute_statistics"]

SCHEMA = "rstar-tree/1"
ROOT = 0
NODE_KINDS = ("root", "step", "code_end", "answer")

_NODE_FIELDS = (
    "parent",
    "depth",
    "text",
    "kind",
    "output",
    "error",
    "terminal",
    "answer",
    "correct",
    "visits",
    "value_sum",
    "prior",
)


class TreeRecordError(UserError):
    """A tree-file record that does not follow schema rstar-tree/1."""


@dataclass
class Tree:
    """One problem's search tree (struct of arrays).

    Attributes:
        problem_id, question, reference: the problem; `reference` is None at
            test time (no gold answer).
        prompt: the text the policy continues at the root.
        seed: this tree's seed, derived from the run seed and the problem id.
        attempt: index in the rollout schedule (0, then 1, 2 for the extra trees
            of round 4 on unsolved problems).
        rollouts: finished rollouts as (path of node ids from the root, reward).
        meta: free-form settings recorded with the tree (rollout budget, c, ...).
    """

    problem_id: str
    question: str
    reference: str | None
    prompt: str
    seed: int
    attempt: int = 0
    parent: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    output: list[str | None] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)
    terminal: list[bool] = field(default_factory=list)
    answer: list[str | None] = field(default_factory=list)
    correct: list[bool | None] = field(default_factory=list)
    visits: list[int] = field(default_factory=list)
    value_sum: list[float] = field(default_factory=list)
    prior: list[float | None] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    #: selection has nothing left to find under the node (module docstring)
    closed: list[bool] = field(default_factory=list)
    rollouts: list[tuple[list[int], float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        problem_id: str,
        question: str,
        reference: str | None,
        prompt: str,
        seed: int,
        attempt: int = 0,
    ) -> Tree:
        tree = cls(str(problem_id), question, reference, prompt, int(seed), int(attempt))
        tree._append(-1, 0, "", "root", None, None, False, None, None, None)
        return tree

    def __len__(self) -> int:
        return len(self.parent)

    def _append(
        self, parent, depth, text, kind, output, error, terminal, answer, correct, prior
    ) -> int:
        node = len(self.parent)
        self.parent.append(parent)
        self.depth.append(depth)
        self.text.append(text)
        self.kind.append(kind)
        self.output.append(output)
        self.error.append(error)
        self.terminal.append(terminal)
        self.answer.append(answer)
        self.correct.append(correct)
        self.visits.append(0 if prior is None else 1)
        self.value_sum.append(0.0 if prior is None else float(prior))
        self.prior.append(None if prior is None else float(prior))
        self.children.append([])
        self.closed.append(False)
        if parent >= 0:
            self.children[parent].append(node)
        return node

    def add_child(
        self,
        parent: int,
        text: str,
        kind: str,
        *,
        output: str | None = None,
        error: str | None = None,
        terminal: bool = False,
        answer: str | None = None,
        correct: bool | None = None,
        prior: float | None = None,
    ) -> int:
        """Append one step under `parent` and return its id."""
        if kind not in NODE_KINDS[1:]:
            raise ValueError(f"node kind must be one of {NODE_KINDS[1:]}, got {kind!r}")
        return self._append(
            parent,
            self.depth[parent] + 1,
            text,
            kind,
            output,
            error,
            terminal,
            answer,
            correct,
            prior,
        )

    def end_without_valid_child(self, node: int) -> None:
        """Make `node` terminal: its expansion gave no step that runs ("no valid
        child"). It gives no answer, so it is not correct."""
        self.terminal[node] = True
        self.correct[node] = False if self.reference is not None else None

    # ---- walking -----------------------------------------------------------------

    def path(self, node: int) -> list[int]:
        """Node ids from the root to `node`, both included."""
        out = []
        while node >= 0:
            out.append(node)
            node = self.parent[node]
        out.reverse()
        return out

    def q(self, node: int) -> float:
        """Q = value_sum / visits (0 for a node never visited and without prior)."""
        v = self.visits[node]
        return self.value_sum[node] / v if v else 0.0

    def step(self, node: int) -> Step:
        """The node as a `steps.Step` (output attached to code_end steps)."""
        return Step(text=self.text[node], kind=self.kind[node], output=self.output[node])

    def response(self, node: int) -> str:
        """The step-format text after the prompt, from the root down to `node`:
        every step as generated and the output block after each code_end step."""
        from rstar_pl.steps import format_output

        parts = []
        for i in self.path(node)[1:]:
            parts.append(self.text[i])
            if self.kind[i] == "code_end" and self.output[i] is not None:
                parts.append(format_output(self.output[i]))
        return "".join(parts)

    def context(self, node: int) -> str:
        """Prompt + response: what the policy continues and the PPM scores."""
        return self.prompt + self.response(node)

    def terminal_reward(self, node: int) -> float:
        """+1 for a correct answer, -1 for a wrong or missing one; with no
        reference (test time) the terminal's PPM score for an answer (its prior),
        -1 when it gives no answer."""
        if self.answer[node] is None:
            return -1.0
        if self.reference is not None:
            return 1.0 if self.correct[node] else -1.0
        if self.prior[node] is None:
            raise UserError(
                f"problem {self.problem_id!r}: no reference answer and no PPM score for "
                "terminal; test-time search needs a scorer"
            )
        return float(self.prior[node])

    def selectable(self, node: int) -> bool:
        """A child selection may descend into: no error, not closed."""
        return self.error[node] is None and not self.closed[node]

    def backup(self, node: int, reward: float) -> None:
        """Record one rollout ending at `node`: add a visit and `reward` to every
        node on its path, then close what the rollout finished (module doc)."""
        path = self.path(node)
        for i in path:
            self.visits[i] += 1
            self.value_sum[i] += reward
        self.rollouts.append((path, float(reward)))
        if self.terminal[node]:
            self._close_upward(node)

    def _close_upward(self, node: int) -> None:
        self.closed[node] = True
        parent = self.parent[node]
        while parent >= 0 and not self.closed[parent]:
            if any(self.selectable(c) for c in self.children[parent]):
                return
            self.closed[parent] = True
            parent = self.parent[parent]

    def solved(self) -> bool:
        """True when some rollout reached a correct answer."""
        return any(self.correct[path[-1]] for path, _ in self.rollouts)

    # ---- files -------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        nodes = [
            {
                "id": i,
                "parent": None if self.parent[i] < 0 else self.parent[i],
                **{name: getattr(self, name)[i] for name in _NODE_FIELDS[1:]},
            }
            for i in range(len(self))
        ]
        return {
            "schema": SCHEMA,
            "problem_id": self.problem_id,
            "question": self.question,
            "reference": self.reference,
            "prompt": self.prompt,
            "seed": self.seed,
            "attempt": self.attempt,
            "meta": self.meta,
            "nodes": nodes,
            "rollouts": [{"path": path, "reward": reward} for path, reward in self.rollouts],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str = "tree record") -> Tree:
        if record.get("schema") != SCHEMA:
            raise TreeRecordError(
                f"{where}: schema must be {SCHEMA!r}, got {record.get('schema')!r}"
            )
        try:
            tree = cls(
                str(record["problem_id"]),
                record["question"],
                record["reference"],
                record.get("prompt", ""),
                int(record["seed"]),
                int(record.get("attempt", 0)),
                meta=dict(record.get("meta") or {}),
            )
            for i, node in enumerate(record["nodes"]):
                if node["id"] != i:
                    raise TreeRecordError(f"{where}: node at position {i} has id {node['id']}")
                parent = -1 if node["parent"] is None else int(node["parent"])
                if (i == 0) != (parent < 0) or parent >= i:
                    raise TreeRecordError(
                        f"{where}: node {i} has invalid parent {node['parent']!r}"
                    )
                tree._append(
                    parent,
                    int(node["depth"]),
                    node["text"],
                    node["kind"],
                    node["output"],
                    node["error"],
                    bool(node["terminal"]),
                    node["answer"],
                    node["correct"],
                    node["prior"],
                )
                tree.visits[i] = int(node["visits"])
                tree.value_sum[i] = float(node["value_sum"])
            tree.rollouts = [
                ([int(j) for j in r["path"]], float(r["reward"])) for r in record["rollouts"]
            ]
        except KeyError as err:
            raise TreeRecordError(f"{where}: missing key {err.args[0]!r}") from None
        for end in {path[-1] for path, _ in tree.rollouts if path}:
            if tree.terminal[end] and not tree.closed[end]:
                tree._close_upward(end)
        return tree


def recompute_statistics(tree: Tree) -> tuple[list[int], list[float]]:
    """(visits, value_sum) of every node recomputed from priors and rollouts
    alone, by the rule in the module docstring."""
    visits = [0 if p is None else 1 for p in tree.prior]
    value_sum = [0.0 if p is None else p for p in tree.prior]
    for path, reward in tree.rollouts:
        for i in path:
            visits[i] += 1
            value_sum[i] += reward
    return visits, value_sum
