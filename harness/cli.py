"""The `harness` command: evaluate checkpoints on the math benchmarks.

    harness tasks
    harness scaling --checkpoint DIR --ppm DIR --tasks gsm8k [--max-trajectories 64] [--mcts]
    harness lm-eval --model rstar-search --model_args pretrained=DIR,ppm=DIR --tasks rstar_math500
    harness processbench --ppm DIR [--splits gsm8k,math,olympiadbench,omnimath] [--data-dir DIR]
    harness eval [--config configs/eval.yaml] --checkpoint DIR --tasks math500,aime2024 [--limit N]
                 [--data-dir DIR] [--backend hf|vllm] [--out DIR]
                 [--search mcts|beam|best_of_n --trajectories N --ppm DIR]

The parsers of `harness eval`, `scaling` and `processbench` are built from their
configs (`EvalConfig`, `ScalingConfig`, `ProcessBenchConfig`) by
`rstar_pl.cli.config_parser`: one flag per field, its attribute docstring is the
help, `--max-tokens` and `--max_tokens` are the same flag, a bool alone
(`--few-shot`) is true and `--no-progress` sets one false. For `harness eval` a
YAML file given with `--config` sets any of them (the field names), and flags on
the command line override it.
Bad input (an unknown task, a missing file, a choice not available yet, an
`--out` another run is writing, an unwritable disk) is reported in one line on
stderr with exit status 2; Ctrl-C in one line with status 130.
"""

from __future__ import annotations

import argparse
import sys

from rstar_pl.errors import UserError

__all__ = [
    "build_parser",
    "eval_parser",
    "load_eval_config_file",
    "main",
    "parse_eval_args",
    "parse_processbench_args",
    "parse_scaling_args",
    "processbench_parser",
    "scaling_parser",
]


def scaling_parser():
    """`harness scaling`'s parser: one flag per `ScalingConfig` field (EvalConfig's model, data
    and generation settings and the scaling run's own; not the search and vote settings)."""
    from harness.scaling import ScalingConfig
    from rstar_pl.cli import config_parser

    return config_parser(
        ScalingConfig,
        prog="harness scaling",
        skip=frozenset({"extra", "search", "trajectories", "top_k", "weighted_vote"}),
        description="Sample K candidates per problem once, score every step with the PPM, and "
        "draw accuracy against k = 1, 2, 4, ... K for pass@k, majority vote, PPM best-of-k, "
        "PPM-weighted vote and (with --mcts) PPM-guided MCTS, with 95% intervals from "
        "resampling the pool. Writes OUT/scaling.png, scaling.json, scaling.md and the pools "
        "(resumable). --tasks also takes rStar-format problem files (named by their stem).",
    )


def parse_scaling_args(argv: list[str]):
    from harness.scaling import ScalingConfig
    from rstar_pl.cli import parse_command_line

    return ScalingConfig(**vars(parse_command_line(scaling_parser(), argv)))


def _run_scaling(argv: list[str]) -> int:
    from harness.scaling import format_markdown, run_scaling

    config = parse_scaling_args(argv)
    results = run_scaling(config)
    print(format_markdown(results, config))
    print(f"figure in {config.out}/scaling.png; numbers in scaling.json and scaling.md")
    return 0


def processbench_parser():
    """`harness processbench`'s parser: one flag per `ProcessBenchConfig` field."""
    from harness.processbench import ProcessBenchConfig
    from rstar_pl.cli import config_parser

    return config_parser(
        ProcessBenchConfig,
        prog="harness processbench",
        description="Score every step prefix of ProcessBench's solutions with a PPM, predict "
        "the first step scored below a threshold, and report per split the accuracy on "
        "erroneous and on correct samples and their F1, for three threshold protocols "
        "(0; tuned on gsm8k; best per split, an upper bound). Writes OUT/summary.json, "
        "table.md and per-split scores; resumes an interrupted run.",
    )


def parse_processbench_args(argv: list[str]):
    from harness.processbench import ProcessBenchConfig
    from rstar_pl.cli import parse_command_line

    return ProcessBenchConfig(**vars(parse_command_line(processbench_parser(), argv)))


def _run_processbench(argv: list[str]) -> int:
    from harness.processbench import format_table, run_processbench
    from harness.step_errors import SplitScore

    config = parse_processbench_args(argv)
    summary = run_processbench(config)
    protocols = {
        key: {s: SplitScore(**v) for s, v in per.items()}
        for key, per in summary["protocols"].items()
    }
    print(format_table(protocols, tune_on=config.tune_on), end="")
    print(f"results in {config.out}")
    return 0


def _run_lm_eval(argv: list[str]) -> int:
    """lm-eval's own command line with the `rstar-search` model registered and our tasks'
    folder on its include path (unless one is given)."""
    from pathlib import Path

    import harness.lm_eval_model  # noqa: F401  (registers rstar-search)

    if "--include_path" not in argv and not any(a.startswith("--include_path=") for a in argv):
        argv = [*argv, "--include_path", str(Path(__file__).resolve().parent / "tasks")]
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as err:  # lm-eval's argparse exits on --help and bad flags
        return int(err.code or 0) if not isinstance(err.code, str) else 2
    finally:
        sys.argv = saved
    return 0


def load_eval_config_file(path: str) -> dict:
    """The EvalConfig fields set by a YAML file; unknown keys are an error."""
    import dataclasses

    import yaml

    from harness.evaluate import EvalConfig, EvalConfigError
    from rstar_pl.files import read_utf8

    try:
        values = yaml.safe_load(read_utf8(path)) or {}
    except OSError as err:
        raise EvalConfigError(f"--config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise EvalConfigError(f"--config {path}: not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(values, dict):
        raise EvalConfigError(
            f"--config {path}: expected a mapping of settings, got {type(values).__name__}"
        )
    allowed = {f.name for f in dataclasses.fields(EvalConfig)} - {"extra"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise EvalConfigError(
            f"--config {path}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return values


#: subcommand -> one-line help; eval, scaling and processbench parse their own command lines
#: (built from their configs), lm-eval hands its to lm-eval
_SUBCOMMANDS = {
    "tasks": "list the benchmark tasks, their files and hub datasets",
    "eval": "solve benchmark problems with a checkpoint and grade them",
    "processbench": "how well a PPM finds the first wrong step (ProcessBench F1)",
    "scaling": "accuracy against the number of trajectories (pass@k, votes, PPM best-of-k)",
    "lm-eval": "lm-eval's command line with the rstar-search model and our tasks "
    "(harness lm-eval --model rstar-search --model_args pretrained=DIR,... "
    "--tasks rstar_math500)",
}


def build_parser() -> argparse.ArgumentParser:
    """`harness --help`: the subcommands (each one's `--help` lists its settings)."""
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in _SUBCOMMANDS.items():
        sub.add_parser(name, add_help=False, help=help_)
    return parser


def _run_tasks() -> int:
    from harness.tasks import TASKS

    width = max(map(len, TASKS))
    for spec in TASKS.values():
        print(f"{spec.name:<{width}}  {spec.filename:<26}  {spec.hub_id}")
    return 0


def eval_parser():
    """`harness eval`'s parser: one flag per `EvalConfig` field (its docstrings are the help),
    and `--config FILE.yaml` of the same fields."""
    from harness.evaluate import EvalConfig
    from rstar_pl.cli import config_parser

    parser = config_parser(
        EvalConfig,
        prog="harness eval",
        skip=frozenset({"extra"}),
        description="Step-format evaluation, greedy or with test-time search and a majority "
        "vote (code executed in the sandbox). Writes OUT/<task>/predictions.jsonl, "
        "summary.json and config.json, and resumes an interrupted run from them.",
    )
    parser.add_argument(
        "--config", default=None, help="YAML file of these settings (same names); flags override it"
    )
    return parser


def parse_eval_args(argv: list[str]):
    """The `EvalConfig` of a `harness eval` command line: the `--config` file's values
    (`load_eval_config_file`) are the defaults, the flags override them."""
    from harness.evaluate import EvalConfig
    from rstar_pl.cli import parse_command_line

    parser = eval_parser()
    # the file is read first, so that it can set what the command line requires
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument("--config", default=None)
    path = first.parse_known_args(argv)[0].config
    if path:
        parser.set_defaults(load_eval_config_file(path))
    options = {k: v for k, v in vars(parse_command_line(parser, argv)).items() if k != "config"}
    return EvalConfig(**options)


def _run_eval(argv: list[str]) -> int:
    from harness.evaluate import evaluate
    from harness.report import format_table

    config = parse_eval_args(argv)
    summaries = evaluate(config)
    print(format_table(summaries))
    print(f"results in {config.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `harness` console script (and `rstar-pl harness`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lm-eval"]:  # everything after it is lm-eval's, unparsed here
        return _run_lm_eval(argv[1:])
    runners = {
        "eval": _run_eval,
        "scaling": _run_scaling,
        "processbench": _run_processbench,
        "tasks": lambda rest: _run_tasks(),
    }
    if argv[:1] == ["tasks"] and argv[1:]:
        build_parser().parse_args(argv)  # `tasks` takes no arguments: argparse says so
    if not argv or argv[0] not in runners:
        build_parser().parse_args(argv)  # --help, or the usage and exit status 2
        return 2
    command = argv[0]
    try:
        return runners[command](argv[1:])
    except (UserError, OSError) as err:
        # Bad input (`rstar_pl.errors.UserError`), or an output that cannot be written: one
        # line; anything else, a bare ValueError included, is a bug and keeps its traceback.
        print(f"harness {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nharness {command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
