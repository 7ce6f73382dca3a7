"""`rstar-pl` / `python -m rstar_pl`: one entry point, one subcommand per job.

Each subcommand lives in its own module as `main(argv) -> int` and is imported
only when used, so `rstar-pl tiny-model` does not pay for importing vLLM.

One way to read a command line: `config_parser` builds a subcommand's parser
from its config dataclasses (jsonargparse; each field's attribute docstring is
its --help, so a flag is documented once, where it is defined), and
`parse_command_line` turns a refused command line into one `UsageError` line.
The field names are the flags (and a config file's keys); `--a-b` is accepted
for `--a_b`. `fit`/`validate`/`test`/`predict` are LightningCLI's (`train.py`).

Bad input ends in one line on stderr and exit status 2: a `UserError` (bad
settings, files, records, command lines; `rstar_pl.errors`), an `OSError` (a
missing, unwritable or full output disk, a folder another run is writing), a
failed child process (`CalledProcessError`, whose own message is above).
Ctrl-C ends with one line and status 130; interrupted commands resume when run
again. Anything else is a bug and keeps its traceback, a `ValueError` that is
not a `UserError` (one from inside torch, say) included.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import shlex
import subprocess
import sys
import typing

from rstar_pl.errors import UsageError, UserError

__all__ = [
    "COMMANDS",
    "argument_error_line",
    "config_parser",
    "did_you_mean",
    "main",
    "parse_command_line",
]

#: subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "rstar_pl.demo:main",
        "the whole loop on CPU with tiny models: evolve on configs/demo.yaml",
    ),
    "evolve": (
        "rstar_pl.evolve:main",
        "self-evolution rounds (generate, extract, train, evaluate), resumable",
    ),
    "harness": (
        "harness.cli:main",
        "evaluate checkpoints on the math benchmarks (same as `harness`)",
    ),
    "tiny-model": ("rstar_pl.tiny:main", "build a tiny random Qwen2 model and tokenizer"),
    "import-model": (
        "rstar_pl.import_model:main",
        "a GGUF checkpoint to a Hugging Face model folder",
    ),
    "generate": (
        "rstar_pl.generate:main",
        "MCTS trees (JSONL shards, resumable) for a problem set",
    ),
    "extract": ("rstar_pl.extract:main", "SFT records, PPM pairs and difficulty from tree files"),
    "fit": (
        "rstar_pl.train:fit_main",
        "train the policy / PPM (LightningCLI; round configs train both)",
    ),
    "validate": ("rstar_pl.train:validate_main", "validate a policy or PPM (LightningCLI)"),
    "test": ("rstar_pl.train:test_main", "test a policy or PPM (LightningCLI)"),
    "predict": ("rstar_pl.train:predict_main", "predict with a policy or PPM (LightningCLI)"),
    "view": ("rstar_pl.view:main", "one problem's search trees as a self-contained HTML page"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    return "usage: rstar-pl SUBCOMMAND [ARGS...]\n\nsubcommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"rstar-pl: unknown subcommand {name!r}; available: {', '.join(sorted(COMMANDS))}",
            file=sys.stderr,
        )
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(rest) or 0)
    except (UserError, OSError) as err:
        # Bad input is reported in one line; anything else is a bug and keeps its traceback.
        print(f"rstar-pl {name}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        command = shlex.join(map(str, err.cmd)) if isinstance(err.cmd, list) else err.cmd
        print(
            f"rstar-pl {name}: error: `{command}` failed with exit status {err.returncode} "
            "(its message is above)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            f"\nrstar-pl {name}: interrupted; run the same command again to resume", file=sys.stderr
        )
        return 130


def did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    """` (did you mean PREFIX+CLOSEST?)` for the known name closest to `word`
    (hyphens read as underscores), or "" when none is close."""
    found = difflib.get_close_matches(word.replace("-", "_"), choices, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{found[0]}?)" if found else ""


def _one_line(err: BaseException) -> str:
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


_TYPE_ERROR = re.compile(
    r'^Parser key "(?P<key>[^"]+)":\s*Expected a (?P<type>.+?)\. '
    r"Got value: (?P<value>.*)$",
    re.S,
)
_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (?P<args>.*)$", re.S)
_UNION_ERROR = re.compile(
    r'^Parser key "(?P<key>[^"]+)":\s*Does not validate against any of the '
    r"Union subtypes\s*Subtypes: \[(?P<types>[^\]]*)\].*Given value: "
    r"(?P<value>.*)$",
    re.S,
)
_REQUIRED = re.compile(r"^the following arguments are required: (?P<keys>.*)$", re.S)


def argument_error_line(
    err: argparse.ArgumentError | Exception, parser: argparse.ArgumentParser | None = None
) -> str:
    """A jsonargparse error as one line that keeps the key, the expected type and
    the value (`batch_size: expected int, got 'abc'`), and for an unknown option the
    closest known one."""
    text = str(err).strip()
    match = _TYPE_ERROR.match(text)
    if match:
        kind = re.sub(r"<class '(?:builtins\.)?([\w.]+)'>", r"\1", match["type"])
        kind = re.sub(r"\s+", " ", kind)
        kind = re.sub(
            r"^(?:typing\.)?Literal\[(.*)\]$", lambda m: "one of " + m[1].replace("'", ""), kind
        )
        return f"{match['key']}: expected {kind}, got {match['value'].strip()!r}"
    match = _UNION_ERROR.match(text)
    if match:
        kinds = re.findall(r"<class '(?:builtins\.)?([\w.]+)'>", match["types"])
        kinds = ["null" if k == "NoneType" else k for k in kinds]
        return f"{match['key']}: expected {' or '.join(kinds)}, got {match['value'].strip()!r}"
    match = _REQUIRED.match(text)
    if match:
        options = {
            a.dest: a.option_strings[0]
            for a in (parser._actions if parser else [])
            if a.option_strings
        }
        keys = [options.get(k, k) for k in match["keys"].split(", ")]
        return f"the following arguments are required: {', '.join(keys)}"
    match = _UNRECOGNIZED.match(text)
    if match and parser is not None:
        known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
        hints = []
        for arg in match["args"].split():
            option = arg.split("=", 1)[0]
            if option.startswith("--"):
                hints.append(option + did_you_mean(option[2:], [k[2:] for k in known], "--"))
        if hints:
            return f"unknown option(s) {', '.join(hints)}; see --help"
    return _one_line(err)


# ---------------------------------------------------------------- subcommands' parsers


class _SetFalse(argparse.Action):
    """`--no-X`: the bool setting X is false."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace[self.dest] = False


def config_parser(
    *configs: type,
    prog: str,
    description: str,
    skip: frozenset[str] = frozenset(),
    several: tuple[str, ...] = (),
    config_file: bool = False,
):
    """The one way a command reads its command line: jsonargparse's parser of its config
    dataclasses, one `--field` per field, the attribute docstrings as its --help.

    Command-line spellings on top of the field names (which config files use):
    `--a-b` is `--a_b`; a bool setting alone (`--x`) is true, `--no-x` makes it false,
    `--x false` works too; the list fields in `several` take one or more words
    (`--trees A B`). `skip`: fields that are not on the command line. `config_file`:
    `--config FILE.yaml` sets any of them (jsonargparse's own; flags after it override it).
    """
    from jsonargparse import ActionConfigFile, set_parsing_settings
    from jsonargparse import ArgumentParser as ConfigParser

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ConfigParser(prog=prog, description=description, exit_on_error=False)
    if config_file:
        parser.add_argument("--config", action=ActionConfigFile, help="YAML config file")
    for config in configs:
        parser.add_class_arguments(config, as_group=False, skip=set(skip) or None)
    _command_line_spellings(parser, several)
    return parser


def _command_line_spellings(parser, several: tuple[str, ...]) -> None:
    from jsonargparse._typehints import ActionTypeHint

    for action in list(parser._actions):
        if not isinstance(action, ActionTypeHint) or not action.option_strings:
            continue
        name = action.option_strings[0][2:]
        if "_" in name:
            parser._option_string_actions["--" + name.replace("_", "-")] = action
        if action._typehint is bool:
            action.nargs, action.const = "?", True
            no = f"--no_{name}"
            parser.add_argument(
                no,
                no.replace("_", "-"),
                action=_SetFalse,
                dest=action.dest,
                default=argparse.SUPPRESS,
                help=f"set {name} to false",
            )
        if name in several:  # each word is one item: the action checks items, not the list
            (action._typehint,) = typing.get_args(action._typehint)
            action.nargs, action.metavar = "+", name.upper()


def parse_command_line(parser, argv: list[str]):
    """`parser.parse_args(argv)`; a command line it refuses is one `UsageError` line."""
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as err:
        line = argument_error_line(err, parser).removesuffix("; see --help")
        raise UsageError(f"{line}; see {parser.prog} --help") from None
