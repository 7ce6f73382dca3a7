"""The scaling figure: accuracy against the number of trajectories, like the paper's Figure 3.

One panel per task, k on a log2 axis, one line per method with its 95% band
(`harness.curves`). Drawn with matplotlib's Agg backend (no display needed) and
written atomically as a PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

from rstar_pl.files import write_atomic

__all__ = ["plot_scaling"]


def plot_scaling(
    curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> None:
    """Write `curves` ({task: {method: [{"k", "accuracy", "low", "high"}]}}) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    tasks = list(curves)
    if not tasks:
        raise ValueError("plot_scaling: no task to draw")
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, points in curves[task].items():
            ks = [p["k"] for p in points]
            acc = [100 * p["accuracy"] for p in points]
            (line,) = ax.plot(ks, acc, marker="o", markersize=3.5, label=method)
            ax.fill_between(
                ks,
                [100 * p["low"] for p in points],
                [100 * p["high"] for p in points],
                color=line.get_color(),
                alpha=0.08,
                linewidth=0,
            )
        ax.set_xscale("log", base=2)
        ks = sorted({p["k"] for points in curves[task].values() for p in points})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("number of trajectories k")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(task)
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
