"""The base class of bad input, so that a command can tell it from a bug.

Every error that means "what you gave cannot be used" (a config key, a file, a
record, a command line) derives from `UserError`: the command lines
(`rstar_pl.cli.main`, `harness.cli.main`) print it as one line and exit with
status 2. Any other exception is a bug and keeps its traceback, a bare
`ValueError` from inside torch included.

`UserError` is a `ValueError`, so code that catches `ValueError` around a
library call keeps working. It is a library of its own (not part of `cli.py`)
because the libraries raise it: `data/`, `search/` and `harness` import this
small module, and nothing of the command line.
"""

from __future__ import annotations

__all__ = ["UsageError", "UserError"]


class UserError(ValueError):
    """Bad input: the message is one line naming the file, record or key, what was
    wrong and what is allowed."""


class UsageError(UserError):
    """A command line its parser refuses (an unknown option, a value of the wrong type)."""
