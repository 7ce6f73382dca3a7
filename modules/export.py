"""Exports of trained models, and the loaders the rest of the project uses.

Policy: a Hugging Face folder (`save_pretrained` of the causal LM and its
tokenizer, step tokens included); vLLM, lm-eval and transformers load it as is.

PPM: a folder with the backbone in Hugging Face format plus
`value_head.safetensors` and `value_head.json` (see `modules.value_model`).
Plain transformers code scores a text with it as

    backbone = AutoModel.from_pretrained(dir); head = safetensors.torch.load_file(dir + "/value_head.safetensors")
    h = backbone(ids, attention_mask=mask).last_hidden_state[:, last_real_token]
    value = tanh(h @ head["weight"].T + head["bias"])

`HFExport` is the callback that writes these folders at the end of `fit`;
under FSDP2 it gathers the full state dict first (`modules.fsdp.export_state_dict`,
a collective call on every rank), rank 0 writes the same files an unsharded
run writes, and all ranks wait for the folder to be complete.
`load_policy` and `load_ppm` accept an export folder or a Lightning `.ckpt`
file (a sharded FSDP2 checkpoint folder is refused with the command that
consolidates it into one file).
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from rstar_pl.errors import UserError
from rstar_pl.files import atomic_dir

__all__ = ["HFExport", "export_module", "export_policy", "export_ppm", "load_policy", "load_ppm"]


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def export_policy(
    model, tokenizer, out_dir: str | os.PathLike, state_dict: dict | None = None
) -> Path:
    """Save a causal LM and its tokenizer as a Hugging Face folder (atomically).

    `state_dict`, when given, is the causal LM's full state dict and replaces
    the live parameters (e.g. gathered from FSDP shards).
    """
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def export_ppm(
    value_model, tokenizer, out_dir: str | os.PathLike, state_dict: dict | None = None
) -> Path:
    """Save a `ValueHeadModel` and its tokenizer (format: `modules.value_model`), atomically."""
    with atomic_dir(out_dir) as tmp:
        value_model.save(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)


class HFExport(Callback):
    """Write the trained model in Hugging Face format to `dirpath` when `fit` ends.

    Works for `PolicyModule` (HF causal LM folder) and `PPMModule` (backbone +
    value head). The tokenizer comes from the datamodule.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        export_module(trainer, pl_module, self.dirpath)


def export_module(
    trainer: L.Trainer, pl_module: L.LightningModule, dirpath: str | os.PathLike
) -> Path:
    """Export the module being trained (`PolicyModule` or `PPMModule`) to `dirpath`.

    Call it on every rank: under FSDP gathering the state dict is collective;
    rank 0 writes; every rank returns once the folder is complete.
    """
    from modules.fsdp import export_state_dict
    from modules.policy import PolicyModule
    from modules.ppm import PPMModule

    # Collective under FSDP (every rank must call it); a plain state_dict otherwise.
    state = export_state_dict(trainer)
    if trainer.is_global_zero:
        tokenizer = trainer.datamodule.tokenizer
        if isinstance(pl_module, PolicyModule):
            export_policy(pl_module.model, tokenizer, dirpath, _strip(state, "model."))
        elif isinstance(pl_module, PPMModule):
            export_ppm(pl_module.model, tokenizer, dirpath, _strip(state, "model."))
        else:
            raise TypeError(f"HFExport: cannot export a {type(pl_module).__name__}")
    # Nobody moves on (e.g. to train the PPM from this folder) before it is complete.
    trainer.strategy.barrier("hf_export")
    return Path(dirpath)


def _read_ckpt(path: Path) -> tuple[dict, dict]:
    import torch

    if path.is_dir():
        raise UserError(
            f"{path}: a sharded (FSDP2) checkpoint folder, which only training resumes from; load the "
            f"stage's export folder instead, or make one file of it first: python -m "
            f"lightning.fabric.utilities.consolidate_checkpoint {path} --output_file {path.stem}-full.ckpt"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "hyper_parameters" not in ckpt or "model" not in ckpt["hyper_parameters"]:
        raise UserError(
            f"{path}: not a checkpoint of a PolicyModule/PPMModule (no hyper_parameters.model)"
        )
    return ckpt["hyper_parameters"], ckpt["state_dict"]


def _from_ckpt(
    path: Path, wrap=None, *, head: bool, dtype: str | None, attn_implementation: str | None
):
    """(model, tokenizer) of a Lightning `.ckpt` of a PolicyModule / PPMModule: the backbone
    its `model` hyperparameter names, built without weights, wrapped by `wrap` (if given),
    then given the checkpoint's `model.` weights."""
    from modules.hf import load_backbone
    from modules.tokenizer import load_tokenizer

    hp, state = _read_ckpt(path)
    backbone = load_backbone(
        hp["model"],
        head=head,
        vocab_size=hp.get("vocab_size"),
        dtype=dtype,
        attn_implementation=attn_implementation,
        weights=False,
    )
    model = wrap(backbone) if wrap is not None else backbone
    model.load_state_dict(_strip(state, "model."))
    return model, load_tokenizer(hp["model"])


def load_policy(
    path: str | os.PathLike,
    *,
    dtype: str | None = "float32",
    attn_implementation: str | None = "sdpa",
):
    """Load a policy for generation: (causal LM in eval mode, tokenizer).

    Args:
        path: an export folder (Hugging Face format, e.g. `runs/round2/policy`),
            any HF causal LM id/folder, or a Lightning `.ckpt` of a `PolicyModule`
            (the architecture and tokenizer then come from the checkpoint's
            `model` hyperparameter, the weights from the checkpoint).
    """
    from modules.hf import load_backbone
    from modules.tokenizer import load_tokenizer

    path = Path(path)
    if path.suffix == ".ckpt":
        model, tokenizer = _from_ckpt(
            path,
            head=True,
            dtype=dtype,
            attn_implementation=attn_implementation,
        )
    else:
        tokenizer = load_tokenizer(str(path))
        model = load_backbone(
            str(path),
            head=True,
            vocab_size=len(tokenizer),
            dtype=dtype,
            attn_implementation=attn_implementation,
        )
    return model.eval(), tokenizer


def load_ppm(
    path: str | os.PathLike,
    *,
    dtype: str | None = "float32",
    attn_implementation: str | None = "sdpa",
):
    """Load a PPM for scoring: (`ValueHeadModel` in eval mode, tokenizer).

    Args:
        path: a folder written by `export_ppm` (e.g. `runs/round2/ppm`) or a
            Lightning `.ckpt` of a `PPMModule`.
    """
    from modules.tokenizer import load_tokenizer
    from modules.value_model import ValueHeadModel

    path = Path(path)
    if path.suffix == ".ckpt":
        model, tokenizer = _from_ckpt(
            path, ValueHeadModel, head=False, dtype=dtype, attn_implementation=attn_implementation
        )
    else:
        tokenizer = load_tokenizer(str(path))
        model = ValueHeadModel.load(path, dtype=dtype, attn_implementation=attn_implementation)
    return model.eval(), tokenizer
