"""One problem's search trees as a single static HTML page.

`render_page(trees, marks)` returns the whole page as a string: the template
`static/tree.html.j2` rendered with Jinja2 (autoescaped: model-written text can
hold `<`, `&` or `</script>`), with `static/viewer.css` and `static/viewer.js`
inlined. The page needs no server and loads nothing: no external stylesheet,
script, font or image, so it opens from a file (or an e-mail attachment) on a
machine without network.

What a node shows: its id, kind, depth, visits N, Q = value_sum / visits, the
PPM prior (when it had one), the terminal verdict (correct, wrong, ungraded
(no reference), no answer, failed code), the step text as generated, and the
program output of an `<end_of_code>` step or the error of a failed one. Nodes
on some rollout path, on an SFT pick, and on either side of a preference pair
carry classes (`on-rollout`, `sft`, `chosen`, `rejected`) and a note naming the
partner; clicking a rollout in the table lights its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from rstar_pl.search.tree import Tree
from rstar_pl.viewer.marks import Marks

__all__ = ["render_page", "verdict"]


def verdict(tree: Tree, node: int) -> str | None:
    """How a node ended: correct / wrong / ungraded / no answer / failed, or None
    for an inner node that did not end a path."""
    if tree.error[node] is not None:
        return "failed"
    if not tree.terminal[node]:
        return None
    if tree.answer[node] is None:
        return "no answer"
    if tree.correct[node] is None:
        return "ungraded"
    return "correct" if tree.correct[node] else "wrong"


def _node_view(
    tree: Tree,
    t: int,
    node: int,
    on_paths: dict[int, list[int]],
    notes: dict[tuple[int, int], list[dict[str, Any]]],
    classes: dict[tuple[int, int], set[str]],
) -> dict[str, Any]:
    visits = tree.visits[node]
    return {
        "anchor": f"t{t}-n{node}",
        "id": node,
        "kind": tree.kind[node],
        "depth": tree.depth[node],
        "text": tree.text[node],
        "output": tree.output[node],
        "error": tree.error[node],
        "visits": visits,
        "q": tree.value_sum[node] / visits if visits else None,
        "prior": tree.prior[node],
        "answer": tree.answer[node],
        "verdict": verdict(tree, node),
        "rollouts": on_paths.get(node, []),
        "classes": sorted(classes.get((t, node), set())),
        "notes": notes.get((t, node), []),
        "children": [],
    }


def _tree_view(tree: Tree, t: int, marks: Marks) -> dict[str, Any]:
    on_paths: dict[int, list[int]] = {}
    for r, (path, _) in enumerate(tree.rollouts):
        for node in path:
            on_paths.setdefault(node, []).append(r)
    notes: dict[tuple[int, int], list[dict[str, Any]]] = {}
    classes: dict[tuple[int, int], set[str]] = {}
    for rank, mt, terminal in marks.sft:
        if mt != t:
            continue
        for node in tree.path(terminal)[1:]:
            classes.setdefault((t, node), set()).add("sft")
        notes.setdefault((t, terminal), []).append(
            {"kind": "sft", "text": f"SFT pick {rank}", "anchor": None, "label": None}
        )

    def ref(where: tuple[int, int]) -> tuple[str, str]:
        label = f"#{where[1]}" if where[0] == t else f"tree {where[0]} #{where[1]}"
        return f"t{where[0]}-n{where[1]}", label

    pairs_here = []
    for pair in marks.pairs:
        if pair.chosen[0] == t:
            classes.setdefault(pair.chosen, set()).add("chosen")
            anchor, label = ref(pair.rejected)
            notes.setdefault(pair.chosen, []).append(
                {
                    "kind": "chosen",
                    "anchor": anchor,
                    "label": label,
                    "text": f"{pair.kind} pair, chosen (Q {pair.chosen_q:+.3f}) over",
                }
            )
        if pair.rejected[0] == t:
            classes.setdefault(pair.rejected, set()).add("rejected")
            anchor, label = ref(pair.chosen)
            notes.setdefault(pair.rejected, []).append(
                {
                    "kind": "rejected",
                    "anchor": anchor,
                    "label": label,
                    "text": f"{pair.kind} pair, rejected (Q {pair.rejected_q:+.3f}) against",
                }
            )
        if t in (pair.chosen[0], pair.rejected[0]):
            pairs_here.append(pair)
    views = [_node_view(tree, t, i, on_paths, notes, classes) for i in range(len(tree))]
    for view in views:
        if view["rollouts"]:
            view["classes"] = sorted({*view["classes"], "on-rollout"})
    for i in range(1, len(tree)):
        views[tree.parent[i]]["children"].append(views[i])
    rollouts = [
        {
            "index": r,
            "path": path,
            "reward": reward,
            "terminal": path[-1],
            "verdict": verdict(tree, path[-1]) or "unfinished",
        }
        for r, (path, reward) in enumerate(tree.rollouts)
    ]
    solved = any(tree.correct[p[-1]] is True for p, _ in tree.rollouts)
    return {
        "index": t,
        "attempt": tree.attempt,
        "seed": tree.seed,
        "meta": tree.meta,
        "root": views[0],
        "rollouts": rollouts,
        "nodes": len(tree),
        "solved": solved,
        "pairs": len(pairs_here),
        "sft": [(rank, node) for rank, mt, node in marks.sft if mt == t],
    }


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    folder = resources.files("rstar_pl.viewer") / "static"
    return tuple(
        (folder / name).read_text(encoding="utf-8")
        for name in ("tree.html.j2", "viewer.css", "viewer.js")
    )  # type: ignore[return-value]


def render_page(trees: Sequence[Tree], marks: Marks, *, source: str = "") -> str:
    """The page of one problem's trees (see the module docstring)."""
    import jinja2

    if not trees:
        raise ValueError("render_page: no trees to show")
    template_text, css, js = _assets()
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["signed"] = lambda v: "—" if v is None else f"{v:+.3f}"
    template = env.from_string(template_text)
    first = trees[0]
    return template.render(
        problem_id=first.problem_id,
        question=first.question,
        reference=first.reference,
        trees=[_tree_view(tree, t, marks) for t, tree in enumerate(trees)],
        sft_count=len(marks.sft),
        pair_count=len(marks.pairs),
        unmatched=marks.unmatched,
        source=source,
        css=css,
        js=js,
    )
