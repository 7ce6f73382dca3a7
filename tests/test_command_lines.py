"""One way to parse a command line (`rstar_pl.cli.config_parser`): the flags come from
the config dataclasses, their help from the fields' docstrings, and the spellings
users type today keep working (`--min-margin` and `--min_margin`, a bool flag alone,
`--no-progress`)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from harness.cli import eval_parser, parse_eval_args
from harness.evaluate import EvalConfig
from rstar_pl.data.extraction import ExtractConfig, ExtractError
from rstar_pl.errors import UsageError
from rstar_pl.extract import ExtractPaths, parse_args


def test_extract_reads_dashes_underscores_and_bare_bool_flags():
    paths, config = parse_args(
        [
            "--trees",
            "a",
            "b",
            "--out",
            "o",
            "--min-margin",
            "0.5",
            "--min_edit=20",
            "--sft-per-problem",
            "3",
            "--error-pairs",
        ]
    )
    assert paths == ExtractPaths(trees=["a", "b"], out="o")
    assert config == ExtractConfig(
        sft_per_problem=3, pairs_per_side=2, min_margin=0.5, min_edit=20, error_pairs=True
    )
    assert (
        parse_args(["--trees", "a", "--out", "o", "--error_pairs", "false"])[1].error_pairs is False
    )
    assert (
        parse_args(["--trees", "a", "--out", "o", "--error-pairs", "--no-error-pairs"])[
            1
        ].error_pairs
        is False
    )
    assert parse_args(["--trees", "a", "--out", "o"])[1] == ExtractConfig()


def test_extract_refuses_a_bad_count_and_a_bad_number_naming_the_key():
    with pytest.raises(ExtractError, match=r"^pairs_per_side must be >= 1, got 0$"):
        parse_args(["--trees", "a", "--out", "o", "--pairs-per-side", "0"])
    with pytest.raises(
        UsageError,
        match=r"^min_margin: expected float, got 'half'; see "
        r"rstar-pl extract --help$",
    ):
        parse_args(["--trees", "a", "--out", "o", "--min-margin", "half"])


def test_harness_eval_flags_are_the_eval_config_fields():
    config = parse_eval_args(
        [
            "--checkpoint",
            "c",
            "--tasks",
            "math500,gsm8k",
            "--top-k",
            "3",
            "--max_tokens",
            "64",
            "--data-dir",
            "d",
            "--weighted-vote",
            "--few-shot",
            "--no-progress",
        ]
    )
    assert config == EvalConfig(
        checkpoint="c",
        tasks=["math500", "gsm8k"],
        top_k=3,
        max_tokens=64,
        data_dir="d",
        weighted_vote=True,
        few_shot=True,
        progress=False,
    )
    assert parse_eval_args(["--checkpoint", "c", "--tasks", "[amc23]"]).tasks == ["amc23"]


def test_each_flag_is_documented_once_by_its_field_docstring():
    """The help of every EvalConfig field is the first words of its docstring (the same
    text, not a second copy that can drift)."""
    import inspect

    source = inspect.getsource(EvalConfig)
    help_of = {
        a.dest: " ".join((a.help or "").split())
        for a in eval_parser()._actions
        if a.option_strings[:1] == [f"--{a.dest}"]
    }
    names = [f.name for f in dataclasses.fields(EvalConfig) if f.name != "extra"]
    for name in names:
        docstring = re.search(rf'^    {name}: [^\n]*\n    """(.*?)"""', source, re.S | re.M)
        assert docstring, name
        assert help_of[name].startswith(" ".join(docstring[1].split())), name


def test_fit_applies_every_stage_override_of_a_round(tmp_path, capsys):
    """Several `--ppm.trainer.*` overrides at once: each one lands (a mapping-typed option
    would keep only the last key under `trainer`), values read as YAML."""
    from pathlib import Path

    import yaml

    from rstar_pl.train import main

    configs = Path(__file__).resolve().parents[1] / "configs"
    assert (
        main(
            "fit",
            [
                "--config",
                str(configs / "round2.yaml"),
                "--config",
                str(configs / "tiny.yaml"),
                f"--run_dir={tmp_path}",
                "--ppm.trainer.max_steps=5",
                "--ppm.trainer.max_epochs",
                "1000",
                "--ppm.model.init_args.lr=0.001",
                "--ppm.trainer.val_check_interval=null",
                "--print_config",
            ],
        )
        == 0
    )
    ppm = yaml.safe_load(capsys.readouterr().out)["ppm"]
    assert (ppm["trainer"]["max_steps"], ppm["trainer"]["max_epochs"]) == (5, 1000)
    assert ppm["trainer"]["val_check_interval"] is None  # tiny.yaml has 2
    assert ppm["model"]["init_args"]["lr"] == 0.001
    assert ppm["trainer"]["default_root_dir"] == str(tmp_path)  # --run_dir, interpolated
