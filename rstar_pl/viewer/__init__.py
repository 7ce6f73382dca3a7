"""The tree viewer's library: what a tree's page shows and the page itself.

- `rstar_pl.viewer.marks`: which nodes the training data would use (the SFT
  picks and the two sides of every preference pair, as `rstar-pl extract`
  chooses them), mapped back from extract's texts to node ids;
- `rstar_pl.viewer.page`: one self-contained static HTML file (inline CSS, JS
  and data; no server, no network) rendered with Jinja2.

The command is `rstar_pl/view.py` (`python -m rstar_pl view`).
"""

from rstar_pl.viewer.marks import Marks, PairMark, training_marks
from rstar_pl.viewer.page import render_page

__all__ = ["Marks", "PairMark", "render_page", "training_marks"]
