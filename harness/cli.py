"""The `harness` command: evaluate checkpoints on the math benchmarks.

    harness tasks
    harness scaling --checkpoint DIR --ppm DIR --tasks gsm8k [--max-trajectories 64] [--mcts]
    harness lm-eval --model rstar-search --model_args pretrained=DIR,ppm=DIR --tasks rstar_math500
    harness processbench --ppm DIR [--splits gsm8k,math,olympiadbench,omnimath] [--data-dir DIR]
    harness eval [--config configs/eval.yaml] --checkpoint DIR --tasks math500,aime2024 [--limit N]
                 [--data-dir DIR] [--backend hf|vllm] [--out DIR]
                 [--search mcts|beam|best_of_n --trajectories N --ppm DIR]

`harness eval`'s parser is built from `harness.evaluate.EvalConfig` (`eval_parser`,
`rstar_pl.cli.config_parser`): one flag per field, its attribute docstring is the
help, `--max-tokens` and `--max_tokens` are the same flag, a bool alone
(`--few-shot`) is true and `--no-progress` sets one false. A YAML file given
with `--config` sets any of them (the field names), and flags on the command
line override it.
Bad input (an unknown task, a missing file, a choice not available yet, an
`--out` another run is writing, an unwritable disk) is reported in one line on
stderr with exit status 2; Ctrl-C in one line with status 130.
"""

from __future__ import annotations

import argparse
import sys

from rstar_pl.errors import UserError

__all__ = ["build_parser", "eval_parser", "load_eval_config_file", "main", "parse_eval_args"]


def _add_model_flags(p: argparse.ArgumentParser, defaults, *, out_help: str) -> None:
    """The flags `harness eval` and `harness scaling` share: model, data, generation."""
    from harness.evaluate import BACKENDS

    p.add_argument("--checkpoint", default=None,
                   help="policy: Hugging Face model folder (or Lightning .ckpt); required")
    p.add_argument("--tasks", default=None,
                   help="comma-separated task names (harness tasks); required")
    p.add_argument("--limit", type=int, default=None, help="first N problems of each task")
    p.add_argument("--data-dir", default=None,
                   help="folder of rStar-format benchmark files (default $RSTAR_DATA_DIR, "
                   "else the Hugging Face hub)")
    p.add_argument("--out", default=defaults.out, help=f"{out_help} (default {defaults.out})")
    p.add_argument("--backend", choices=BACKENDS, default=defaults.backend,
                   help=f"generation backend (default {defaults.backend})")
    p.add_argument("--ppm", default=None,
                   help="process preference model folder or .ckpt (needed by mcts and beam)")
    p.add_argument("--samples", type=int, default=defaults.samples,
                   help=f"steps sampled per expansion (default {defaults.samples})")
    p.add_argument("--rollouts", type=int, default=defaults.rollouts,
                   help=f"MCTS rollouts per run (default {defaults.rollouts})")
    p.add_argument("--temperature", type=float, default=defaults.temperature,
                   help=f"search sampling temperature (default {defaults.temperature})")
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                   help=f"token limit of one step (default {defaults.max_tokens})")
    p.add_argument("--max-depth", type=int, default=defaults.max_depth,
                   help=f"steps per solution (default {defaults.max_depth})")
    p.add_argument("--max-code-runs", type=int, default=defaults.max_code_runs,
                   help=f"program executions per solution (default {defaults.max_code_runs})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"problems generated together (default {defaults.batch_size})")
    p.add_argument("--few-shot", action="store_true", help="round 1's few-shot prompt")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=None, help="torch device of the hf backend")
    p.add_argument("--dtype", default=defaults.dtype, help="dtype of the model weights")
    p.add_argument("--gpu-memory-utilization", type=float,
                   default=defaults.gpu_memory_utilization,
                   help="vllm: memory fraction for the engine (about 0.3 on a CPU machine)")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: context length")
    p.add_argument("--code-timeout", type=float, default=defaults.code_timeout,
                   help="seconds a program may run")
    p.add_argument("--grade-timeout", type=float, default=defaults.grade_timeout,
                   help="seconds one answer comparison may take")
    p.add_argument("--overwrite", action="store_true",
                   help="discard earlier results in --out instead of resuming")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide the progress bar")


def _add_aggregate(p: argparse.ArgumentParser, defaults) -> None:
    from rstar_pl.search.aggregate import AGGREGATIONS

    p.add_argument("--aggregate", choices=AGGREGATIONS, default=defaults.aggregate,
                   help="best_of_n, beam, scaling: trajectory score from step scores "
                   f"(default {defaults.aggregate})")


def _add_scaling(sub: argparse._SubParsersAction) -> None:
    from harness.scaling import ScalingConfig

    defaults = ScalingConfig(checkpoint="", tasks=["math500"], ppm="-")
    p = sub.add_parser(
        "scaling",
        help="accuracy against the number of trajectories (pass@k, votes, PPM best-of-k)",
        description="Sample K candidates per problem once, score every step with the PPM, and "
        "draw accuracy against k = 1, 2, 4, ... K for pass@k, majority vote, PPM best-of-k, "
        "PPM-weighted vote and (with --mcts) PPM-guided MCTS, with 95%% intervals from "
        "resampling the pool. Writes OUT/scaling.png, scaling.json, scaling.md and the pools "
        "(resumable).",
    )
    _add_model_flags(p, defaults, out_help="output folder")
    p.set_defaults(tasks=None)  # --tasks also takes rStar-format problem files (name: their stem)
    p.add_argument("--max-trajectories", type=int, default=defaults.max_trajectories,
                   help=f"K, candidates per problem (default {defaults.max_trajectories})")
    p.add_argument("--mcts", action="store_true",
                   help="also K PPM-guided MCTS runs per problem (costly)")
    _add_aggregate(p, defaults)
    p.add_argument("--resamples", type=int, default=defaults.resamples,
                   help=f"resampling draws per k (default {defaults.resamples})")


def _run_scaling(args: argparse.Namespace) -> int:
    from harness.scaling import ScalingConfig, format_markdown, run_scaling

    options = {k: v for k, v in vars(args).items() if k != "command"}
    for flag in ("checkpoint", "tasks", "ppm"):
        if not options.get(flag):
            raise UserError(f"--{flag} is required")
    config = ScalingConfig(**options)
    results = run_scaling(config)
    print(format_markdown(results, config))
    print(f"figure in {config.out}/scaling.png; numbers in scaling.json and scaling.md")
    return 0


def _add_processbench(sub: argparse._SubParsersAction) -> None:
    from harness.processbench import SPLITS, ProcessBenchConfig

    defaults = ProcessBenchConfig(ppm="")
    p = sub.add_parser(
        "processbench",
        help="how well a PPM finds the first wrong step (ProcessBench F1)",
        description="Score every step prefix of ProcessBench's solutions with a PPM, predict "
        "the first step scored below a threshold, and report per split the accuracy on "
        "erroneous and on correct samples and their F1, for three threshold protocols "
        "(0; tuned on gsm8k; best per split, an upper bound). Writes OUT/summary.json, "
        "table.md and per-split scores; resumes an interrupted run.",
    )
    p.add_argument("--ppm", required=True, help="PPM export folder or Lightning .ckpt")
    p.add_argument("--splits", default=",".join(SPLITS),
                   help=f"comma-separated splits (default {','.join(SPLITS)})")
    p.add_argument("--data-dir", default=None,
                   help="folder of <split>.json files (default: the hub, Qwen/ProcessBench)")
    p.add_argument("--revision", default=None, help="hub revision to pin")
    p.add_argument("--out", default=defaults.out, help=f"output folder (default {defaults.out})")
    p.add_argument("--limit", type=int, default=None,
                   help="N samples of each split, erroneous and correct in the split's shares")
    p.add_argument("--tune-on", default=defaults.tune_on,
                   help=f"split whose best threshold is applied to all (default "
                   f"{defaults.tune_on})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"step prefixes per forward pass (default {defaults.batch_size})")
    p.add_argument("--max-length", type=int, default=defaults.max_length,
                   help=f"tokens per prefix, cut from the left (default {defaults.max_length})")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available)")
    p.add_argument("--dtype", default=defaults.dtype, help="dtype of the PPM weights")
    p.add_argument("--overwrite", action="store_true",
                   help="discard scores already in --out instead of resuming")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide the progress bar")


def _run_processbench(args: argparse.Namespace) -> int:
    from harness.processbench import ProcessBenchConfig, format_table, run_processbench
    from harness.step_errors import SplitScore

    options = {k: v for k, v in vars(args).items() if k != "command"}
    config = ProcessBenchConfig(**options)
    summary = run_processbench(config)
    protocols = {key: {s: SplitScore(**v) for s, v in per.items()}
                 for key, per in summary["protocols"].items()}
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
        raise EvalConfigError(f"--config {path}: expected a mapping of settings, "
                              f"got {type(values).__name__}")
    allowed = {f.name for f in dataclasses.fields(EvalConfig)} - {"extra"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise EvalConfigError(f"--config {path}: unknown setting(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(allowed))}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list the benchmark tasks, their files and hub datasets")
    sub.add_parser("eval", add_help=False,
                   help="solve benchmark problems with a checkpoint and grade them "
                   "(harness eval --help lists its settings)")
    _add_processbench(sub)
    _add_scaling(sub)
    sub.add_parser("lm-eval", add_help=False,
                   help="lm-eval's command line with the rstar-search model and our tasks "
                   "(harness lm-eval --model rstar-search --model_args pretrained=DIR,... "
                   "--tasks rstar_math500)")
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
        EvalConfig, prog="harness eval", skip=frozenset({"extra"}),
        description="Step-format evaluation, greedy or with test-time search and a majority "
        "vote (code executed in the sandbox). Writes OUT/<task>/predictions.jsonl, "
        "summary.json and config.json, and resumes an interrupted run from them.",
    )
    parser.add_argument("--config", default=None,
                        help="YAML file of these settings (same names); flags override it")
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
    if argv[:1] == ["eval"]:  # its parser is built from EvalConfig (`eval_parser`)
        command, run = "eval", lambda: _run_eval(argv[1:])
    else:
        args = build_parser().parse_args(argv)
        command = args.command
        runners = {"tasks": _run_tasks, "processbench": lambda: _run_processbench(args),
                   "scaling": lambda: _run_scaling(args)}
        run = runners[command]
    try:
        return run()
    except (UserError, OSError) as err:
        # Bad input (`rstar_pl.errors.UserError`), or an output that cannot be written: one
        # line; anything else, a bare ValueError included, is a bug and keeps its traceback.
        print(f"harness {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nharness {command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
