"""Training data from trees: SFT records, PPM pairs, Q-labelled steps, outcomes and
difficulty (`extract_with_report`); `python -m rstar_pl extract` is the command.

A *trajectory* is a distinct root-to-terminal path that some rollout took. It
is *graded* when it ends in an answer step with a `\\boxed{}` answer that was
graded against the reference and none of its steps failed (trees written
before failed steps were discarded may hold such paths); a graded trajectory
is correct or wrong. Every other ending (no valid child, the depth limit, an
answer step without a box) is neither: it counts for no pair, no SFT record and
no difficulty, even though its -1 reward is part of every Q on its path. Its
`mean_q` and `min_q` are over its steps (the root excluded),
Q = value_sum / visits. All trees of one problem (round 4 may grow several)
are pooled.

Outputs (JSONL, and one JSON report; replaced together). The records below are
what `extract` returns; written out, each line starts with its schema (`"schema":
"rstar-sft/1"`, ...), the file layout being `rstar_pl.data.records`'s:

- `sft.jsonl`, per problem the 2 correct trajectories with the highest mean Q
  (ties: higher min Q, then the earlier tree and node): `problem_id`,
  `question`, `response`, `mean_q`, `min_q`. `response` is the step-format text
  after the prompt (steps as generated, `<output>` blocks included), so
  `steps.build_prompt(question) + response` is the whole trajectory; no step of
  it failed, so each of its programs (`steps.join_code`) runs and prints its
  `<output>` block.
- `pairs.jsonl`, PPM preference pairs: `problem_id`, `prompt`, `chosen`,
  `rejected`, `chosen_q`, `rejected_q`, `kind`.
  * `kind: "step"`: at every node, among its children, the up to 2 with the
    highest Q whose subtrees reached a correct answer (positives) are paired
    with the up to 2 with the lowest Q whose subtrees reached a wrong answer
    and no correct one (negatives). `prompt` is `build_prompt(question)` + the
    shared prefix steps; `chosen` / `rejected` is the step text continuing it
    (a `<end_of_code>` step with its `<output>` block), so `prompt + chosen` is
    exactly the partial trajectory the PPM scores.
  * `kind: "final"`: whole graded trajectories of the problem, the 2 correct
    ones with the highest mean Q against the 2 wrong ones with the lowest mean
    Q; `prompt` is `build_prompt(question)`, `chosen` / `rejected` the
    responses and `chosen_q` / `rejected_q` their mean Q.
  * `kind: "error"`, only with `--error-pairs`: at every node, its up to 2
    positives against up to 2 of its children whose code failed (search never
    explores those; `rejected_q` is -1 by convention). They teach "code that
    fails is worse", which is not what the paper's pairs teach: opt-in.
  Problems whose graded trajectories are all correct or all wrong give no step
  or final pairs. Optional filters (the reference code uses 0.5 and 20):
  `--min-margin` (chosen_q - rejected_q) and `--min-edit` (character edit
  distance between chosen and rejected).
- `step_values.jsonl` and `outcomes.jsonl`, the data of the two pointwise reward
  models of the paper's ablation (`PPMModule(loss=q_regression | outcome)`,
  `datamodules.values`), from the same trees as the pairs: `problem_id`,
  `prompt`, `completion`, `target`, `kind`, with `prompt + completion` the text
  scored, cut as the pairs are.
  * `step_values` (`kind: "q"`): every step some rollout passed through (visits
    > 0, its program did not fail; the root excluded), one record per tree node:
    `prompt` is `build_prompt(question)` + the steps before it, `completion` the
    step as a pair's `chosen` holds it, `target` its Q. A step whose rollouts
    reached no answer keeps its Q (-1 when that is all they did): unlike a pair,
    a regression target needs no graded answer below it.
  * `outcomes` (`kind: "outcome"`): every distinct graded trajectory of the
    problem (one record per response text), whole: `prompt` is
    `build_prompt(question)`, `completion` the response, `target` +1 when its
    answer is correct and -1 when it is wrong. Ungraded endings give none.
- `difficulty.jsonl`: `problem_id`, `difficulty` (easy: every graded
  trajectory correct; medium: mixed; hard: none correct, or none graded),
  `correct`, `wrong`.
- `report.json` (`extract_with_report`): what the trees and the data hold, also printed as
  a short table: how the rollouts ended, graded trajectories, step pairs per
  depth of the judged step, pair kinds, SFT records and ties (problems whose
  top-2 cut fell between trajectories of equal mean and min Q, so tree and node
  order decided), difficulty counts, value records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.search.tree import Tree
from rstar_pl.steps import build_prompt, format_output

__all__ = [
    "ENDINGS",
    "ExtractConfig",
    "ExtractError",
    "ScoredPath",
    "bounded_edit_distance",
    "ending",
    "extract",
    "extract_with_report",
    "format_report",
    "outcome_records",
    "step_value_records",
    "trajectories",
]

#: How a rollout can end (`ending`): "error" only in trees written before
#: failed steps were discarded.
ENDINGS = ("answer", "depth_limit", "no_valid_child", "error", "no_boxed_answer")

log = logging.getLogger("rstar_pl.extract")


class ExtractError(UserError):
    """Tree inputs that give no training data."""


@dataclass(frozen=True)
class ExtractConfig:
    """How many records per problem/step, and the optional pair filters."""

    sft_per_problem: int = 2
    """SFT records per problem: the correct trajectories of highest mean Q (>= 1)."""
    pairs_per_side: int = 2
    """Preference pairs per step: this many highest-Q correct against lowest-Q wrong (>= 1)."""
    min_margin: float = 0.0
    """Pair filter: minimum chosen_q - rejected_q."""
    min_edit: int = 0
    """Pair filter: minimum character edit distance of chosen and rejected."""
    error_pairs: bool = False
    """Also pair valid steps against failed ones (kind "error"); off by default."""

    def __post_init__(self) -> None:
        for name in ("sft_per_problem", "pairs_per_side"):
            if getattr(self, name) < 1:
                raise ExtractError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ScoredPath:
    """One rollout path of a tree with its Q statistics over its steps.

    `graded`: it ends in a graded answer and no step of it failed; `correct`
    implies `graded`.
    """

    tree_index: int
    terminal: int
    response: str
    correct: bool
    mean_q: float
    min_q: float
    graded: bool = True


def ending(tree: Tree, node: int) -> str:
    """How a rollout that ends at `node` ended (one of `ENDINGS`)."""
    path = tree.path(node)
    if any(tree.error[i] is not None for i in path):
        return "error"
    if tree.kind[node] == "answer":
        return "answer" if tree.answer[node] is not None else "no_boxed_answer"
    max_depth = tree.meta.get("max_depth")
    if not tree.children[node] and (max_depth is None or tree.depth[node] >= max_depth):
        return "depth_limit"
    return "no_valid_child"


def _graded(tree: Tree, node: int) -> bool:
    return tree.correct[node] is not None and ending(tree, node) == "answer"


def trajectories(tree: Tree, tree_index: int = 0) -> list[ScoredPath]:
    """The distinct rollout paths of a tree, in terminal-id order."""
    out = []
    for terminal in sorted({path[-1] for path, _ in tree.rollouts}):
        steps = tree.path(terminal)[1:]
        if not steps:
            continue
        qs = [tree.q(i) for i in steps]
        graded = _graded(tree, terminal)
        out.append(
            ScoredPath(
                tree_index,
                terminal,
                tree.response(terminal),
                graded and tree.correct[terminal] is True,
                sum(qs) / len(qs),
                min(qs),
                graded,
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


def _pair(
    tree: Tree,
    prompt: str,
    kind: str,
    chosen: str,
    rejected: str,
    chosen_q: float,
    rejected_q: float,
) -> dict[str, Any]:
    return {
        "problem_id": tree.problem_id,
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_q": chosen_q,
        "rejected_q": rejected_q,
        "kind": kind,
    }


def _step_pairs(
    tree: Tree, config: ExtractConfig, kinds: tuple[str, ...]
) -> list[tuple[int, dict]]:
    """(depth of the judged step, pair) of one tree: kind "step" and/or "error"."""
    reached_correct = [0] * len(tree)
    reached_wrong = [0] * len(tree)
    for path, _ in tree.rollouts:
        end = path[-1]
        if not _graded(tree, end):
            continue
        counter = reached_correct if tree.correct[end] is True else reached_wrong
        for i in path:
            counter[i] += 1
    base = build_prompt(tree.question)
    out = []
    for node in range(len(tree)):
        kids = tree.children[node]
        positives = sorted((c for c in kids if reached_correct[c]), key=lambda c: (-tree.q(c), c))
        if not positives:
            continue
        positives = positives[: config.pairs_per_side]
        depth = tree.depth[node] + 1
        prompt = None
        if "step" in kinds:
            negatives = sorted(
                (c for c in kids if reached_wrong[c] and not reached_correct[c]),
                key=lambda c: (tree.q(c), c),
            )
            for pos in positives:
                for neg in negatives[: config.pairs_per_side]:
                    chosen, rejected = _step_text(tree, pos), _step_text(tree, neg)
                    if _keep(config, chosen, rejected, tree.q(pos), tree.q(neg)):
                        prompt = prompt or base + tree.response(node)
                        out.append(
                            (
                                depth,
                                _pair(
                                    tree, prompt, "step", chosen, rejected, tree.q(pos), tree.q(neg)
                                ),
                            )
                        )
        if "error" in kinds:
            failed = [c for c in kids if tree.error[c] is not None][: config.pairs_per_side]
            for pos in positives:
                for neg in failed:
                    chosen, rejected = _step_text(tree, pos), _step_text(tree, neg)
                    if _keep(config, chosen, rejected, tree.q(pos), -1.0):
                        prompt = prompt or base + tree.response(node)
                        out.append(
                            (
                                depth,
                                _pair(tree, prompt, "error", chosen, rejected, tree.q(pos), -1.0),
                            )
                        )
    return out


def step_value_records(tree: Tree) -> list[dict[str, Any]]:
    """One tree's Q-labelled steps, in node order (`step_values.jsonl`, module docstring)."""
    base = build_prompt(tree.question)
    return [
        {
            "problem_id": tree.problem_id,
            "prompt": base + tree.response(tree.parent[node]),
            "completion": _step_text(tree, node),
            "target": tree.q(node),
            "kind": "q",
        }
        for node in range(1, len(tree))
        if tree.visits[node] > 0 and tree.error[node] is None
    ]


def outcome_records(
    problem_id: str, question: str, trajs: Sequence[ScoredPath]
) -> list[dict[str, Any]]:
    """One problem's graded trajectories, each response once, +1 right / -1 wrong
    (`outcomes.jsonl`, module docstring)."""
    prompt, seen, out = build_prompt(question), set(), []
    for t in trajs:
        if t.graded and t.response not in seen:
            seen.add(t.response)
            out.append(
                {
                    "problem_id": problem_id,
                    "prompt": prompt,
                    "completion": t.response,
                    "target": 1.0 if t.correct else -1.0,
                    "kind": "outcome",
                }
            )
    return out


def step_pairs(tree: Tree, config: ExtractConfig) -> list[dict[str, Any]]:
    """Per-step preference pairs of one tree (see the module docstring)."""
    return [pair for _, pair in _step_pairs(tree, config, ("step",))]


def _best_first(trajs: list[ScoredPath]) -> list[ScoredPath]:
    return sorted(trajs, key=lambda t: (-t.mean_q, -t.min_q, t.tree_index, t.terminal))


def extract(
    trees: Iterable[Tree], config: ExtractConfig = ExtractConfig()
) -> dict[str, list[dict]]:
    """{"sft", "pairs", "step_values", "outcomes", "difficulty": [...]} records,
    problems in order of first appearance."""
    return extract_with_report(trees, config)[0]


def extract_with_report(
    trees: Iterable[Tree], config: ExtractConfig = ExtractConfig()
) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """`extract`'s records and the report of what the trees and the records hold
    (`report.json`, see the module docstring)."""
    by_problem: dict[str, list[Tree]] = {}
    for tree in trees:
        by_problem.setdefault(tree.problem_id, []).append(tree)
    sft, pairs, difficulty, step_values, outcomes = [], [], [], [], []
    tally = _Tally()
    for problem_id, group in by_problem.items():
        question = group[0].question
        for tree in group:
            tally.trees(tree)
        trajs = [t for k, tree in enumerate(group) for t in trajectories(tree, k)]
        tally.trajectories(trajs)
        step_values.extend(r for tree in group for r in step_value_records(tree))
        outcomes.extend(outcome_records(problem_id, question, trajs))
        good = _best_first([t for t in trajs if t.correct])
        bad = [t for t in trajs if t.graded and not t.correct]
        chosen: list[ScoredPath] = []
        seen: set[str] = set()
        for t in good:
            if len(chosen) == config.sft_per_problem:
                tally.sft_cut(chosen[-1], t)
                break
            if t.response in seen:
                continue
            seen.add(t.response)
            chosen.append(t)
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
                "difficulty": "easy" if good and not bad else "medium" if good else "hard",
                "correct": len(good),
                "wrong": len(bad),
            }
        )
        kinds = ("step",) if good and bad else ()
        if config.error_pairs and good:
            kinds += ("error",)
        for tree in group:
            for depth, pair in _step_pairs(tree, config, kinds):
                tally.pair(pair["kind"], depth)
                pairs.append(pair)
        if not good or not bad:
            continue
        worst = sorted(bad, key=lambda t: (t.mean_q, t.min_q, t.tree_index, t.terminal))
        prompt = build_prompt(question)
        for pos in good[: config.pairs_per_side]:
            for neg in worst[: config.pairs_per_side]:
                if _keep(config, pos.response, neg.response, pos.mean_q, neg.mean_q):
                    tally.pair("final", None)
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
    report = tally.report(len(by_problem), len(sft), difficulty)
    report["value_records"] = {"step_values": len(step_values), "outcomes": len(outcomes)}
    data = {
        "sft": sft,
        "pairs": pairs,
        "step_values": step_values,
        "outcomes": outcomes,
        "difficulty": difficulty,
    }
    return data, report


class _Tally:
    """Counts for `report.json` gathered while extracting."""

    def __init__(self) -> None:
        self.rollouts = 0
        self.endings = dict.fromkeys(ENDINGS, 0)
        self.graded = {"answered": 0, "correct": 0, "wrong": 0, "unanswered": 0}
        self.by_depth: dict[int, int] = {}
        self.kinds = {"step": 0, "final": 0, "error": 0}
        self.ties = 0

    def trees(self, tree: Tree) -> None:
        for path, _ in tree.rollouts:
            self.rollouts += 1
            self.endings[ending(tree, path[-1])] += 1

    def trajectories(self, trajs: list[ScoredPath]) -> None:
        for t in trajs:
            if t.graded:
                self.graded["answered"] += 1
                self.graded["correct" if t.correct else "wrong"] += 1
            else:
                self.graded["unanswered"] += 1

    def sft_cut(self, last: ScoredPath, first_left_out: ScoredPath) -> None:
        if (last.mean_q, last.min_q) == (first_left_out.mean_q, first_left_out.min_q):
            self.ties += 1

    def pair(self, kind: str, depth: int | None) -> None:
        self.kinds[kind] += 1
        if kind == "step" and depth is not None:
            self.by_depth[depth] = self.by_depth.get(depth, 0) + 1

    def report(self, problems: int, sft: int, difficulty: list[dict]) -> dict[str, Any]:
        levels = [d["difficulty"] for d in difficulty]
        return {
            "problems": problems,
            "rollouts": self.rollouts,
            "rollout_endings": dict(self.endings),
            "trajectories": dict(self.graded),
            "step_pairs_by_depth": {str(d): n for d, n in sorted(self.by_depth.items())},
            "pairs": dict(self.kinds),
            "sft": {"records": sft, "ties": self.ties},
            "difficulty": {level: levels.count(level) for level in ("easy", "medium", "hard")},
        }


def format_report(report: dict[str, Any]) -> str:
    """The short table `extract` prints (the same numbers as report.json)."""
    total = max(1, report["rollouts"])
    endings = ", ".join(
        f"{name.replace('_', ' ')} {100 * n / total:.1f}%"
        for name, n in report["rollout_endings"].items()
        if n or name in ("answer", "depth_limit", "no_valid_child")
    )
    depth = ", ".join(f"{d}: {n}" for d, n in report["step_pairs_by_depth"].items()) or "none"
    t, p, f = report["trajectories"], report["pairs"], report["difficulty"]
    rows = [
        ("problems / rollouts", f"{report['problems']} / {report['rollouts']}"),
        ("rollouts ending in", endings),
        (
            "graded trajectories",
            f"{t['answered']} (correct {t['correct']}, wrong {t['wrong']}); "
            f"{t['unanswered']} without a graded answer",
        ),
        ("step pairs by depth", depth),
        ("pairs", f"step {p['step']}, final {p['final']}, error {p['error']}"),
        ("SFT records / ties", f"{report['sft']['records']} / {report['sft']['ties']}"),
        ("difficulty", f"easy {f['easy']}, medium {f['medium']}, hard {f['hard']}"),
    ]
    values = report.get("value_records")
    if values is not None:
        rows.append(
            ("Q-labelled steps / outcomes", f"{values['step_values']} / {values['outcomes']}")
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
