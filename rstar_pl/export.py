"""Moved to `modules.export` (Lightning-side code lives in `modules/`); this name is kept
for one release so that configs naming `rstar_pl.export.HFExport` keep working.

Configs should say `class_path: modules.export.HFExport`; code should import from
`modules.export`. This file goes in the release after next.
"""

from __future__ import annotations

import importlib
import warnings

#: the names that moved (no `__all__`: they are found on first use, not defined here)
_MOVED = ("HFExport", "export_module", "export_policy", "export_ppm", "load_policy", "load_ppm")


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"rstar_pl.export.{name} moved to modules.export.{name}", FutureWarning, stacklevel=2
    )
    return getattr(importlib.import_module("modules.export"), name)
