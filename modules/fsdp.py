"""FSDP2 for the Hugging Face models of both stages: one shard group per decoder layer.

Under Lightning's `ModelParallelStrategy` (`modules.strategy.FSDP2Strategy`) a
LightningModule parallelises itself in `configure_model`, where the strategy's
device mesh is known. `shard_model` applies `torch.distributed.fsdp.fully_shard`
bottom-up:

    every decoder layer             one group: all-gathered just before its forward
                                    (and again in backward), freed after
    `fp32_modules` (the value head) one group each, parameters never cast
    the whole model (the root)      what is left: embeddings, final norm, LM head

After it each rank holds 1/world of every parameter (a `DTensor` sharded on
dim 0), of its gradient and of its AdamW state: per-rank memory for the model
state falls from 16 bytes a parameter (fp32 weight, gradient, two moments) to
16/world, plus one gathered layer at a time.

Mixed precision is FSDP2's module-level policy (`FSDPConfig.param_dtype`,
`reduce_dtype`): the sharded fp32 parameters are the master weights the
optimiser steps; the all-gathered copies are cast to `param_dtype` (bf16 on
GPUs) for forward and backward, so activations are saved in bf16 too; gradients
are reduce-scattered in `reduce_dtype` (fp32). Lightning's `precision` plugin
then stays at "32-true": autocast on top would add nothing but casts.

Activation checkpointing is the modules' `gradient_checkpointing` flag
(transformers' per-layer checkpointing, non-reentrant): it recomputes each
decoder layer in backward, which FSDP2 supports (the layer is all-gathered for
backward anyway, and the recompute runs inside that window).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TypedDict

import torch
from torch import nn

from modules.hf import resolve_dtype
from rstar_pl.errors import UserError

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "FSDPConfig",
    "decoder_layers",
    "export_state_dict",
    "full_state_dict",
    "is_sharded",
    "shard_model",
]


class FSDPConfig(TypedDict, total=False):
    """`model.init_args.fsdp`: how `configure_model` shards under a ModelParallelStrategy.

    Ignored by every other strategy (single device, DDP). All keys are optional.

    Keys:
        layer_class: the decoder layer, as a class name ("Qwen2DecoderLayer") or
            import path; default: the model's own `_no_split_modules`, the
            classes transformers never splits across devices.
        param_dtype: "bfloat16", "float16", "float32" or null (default): the
            dtype of the all-gathered parameters, i.e. of forward and backward
            compute; null computes in the stored dtype.
        reduce_dtype: dtype of the gradient reduce-scatter (default "float32").
        reshard_after_forward: free each gathered layer after its forward and
            gather it again in backward (default true, ZeRO-3); false keeps it
            until backward (one all-gather less per layer, one layer's full
            parameters more per layer in memory).
        cpu_offload: keep sharded parameters, gradients and optimiser state in
            CPU memory (default false); slower, for models that do not fit.
    """

    layer_class: str
    param_dtype: Literal["bfloat16", "float16", "float32"] | None
    reduce_dtype: Literal["bfloat16", "float16", "float32"] | None
    reshard_after_forward: bool
    cpu_offload: bool


def _dtype(config: FSDPConfig, key: str, default: str | None) -> torch.dtype | None:
    return resolve_dtype(config.get(key, default), key=f"model.init_args.fsdp.{key}")


def _class_names(module: nn.Module) -> set[str]:
    """Names and import paths of the module's classes (FSDP subclasses them once sharded)."""
    return {
        n for c in type(module).__mro__ for n in (c.__name__, f"{c.__module__}.{c.__qualname__}")
    }


def decoder_layers(model: nn.Module, layer_class: str | None = None) -> list[nn.Module]:
    """The decoder layers of `model`, in order: the modules FSDP shards one by one.

    `layer_class` is a class name or import path; without it the classes come
    from `_no_split_modules` of the Hugging Face models inside `model`.
    """
    if layer_class:
        names = {layer_class}
        source = "model.init_args.fsdp.layer_class"
    else:
        names = {n for m in model.modules() for n in (getattr(m, "_no_split_modules", None) or [])}
        source = "the model's _no_split_modules"
    layers = [m for m in model.modules() if names & _class_names(m)]
    if not layers:
        found = sorted({type(m).__name__ for m in model.modules() if "Layer" in type(m).__name__})
        raise UserError(
            f"{source} {sorted(names)} matches no module of {type(model).__name__}; "
            f"set model.init_args.fsdp.layer_class to its decoder layer class (layer-like classes here: {found})"
        )
    return layers


def is_sharded(module: nn.Module) -> bool:
    """Whether `fully_shard` has been applied to `module` (FSDP2)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def shard_model(
    model: nn.Module,
    mesh: DeviceMesh,
    config: FSDPConfig | None = None,
    *,
    fp32_modules: Iterable[nn.Module] = (),
) -> list[nn.Module]:
    """Apply FSDP2 to `model` over the 1-D data-parallel `mesh` (see the module docstring).

    Returns:
        The decoder layers that became shard groups.
    """
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    config = dict(config or {})
    unknown = set(config) - set(FSDPConfig.__annotations__)
    if unknown:
        raise UserError(
            f"model.init_args.fsdp has unknown keys {sorted(unknown)}; allowed: {', '.join(FSDPConfig.__annotations__)}"
        )
    if mesh.ndim != 1:
        raise UserError(
            f"FSDP needs a 1-D data-parallel mesh; got {mesh.ndim}-D {mesh.mesh_dim_names}"
        )
    reduce = _dtype(config, "reduce_dtype", "float32")
    policy = MixedPrecisionPolicy(
        param_dtype=_dtype(config, "param_dtype", None), reduce_dtype=reduce
    )
    # The fp32 groups cast their floating inputs (e.g. bf16 hidden states) up to fp32.
    fp32 = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
    offload = CPUOffloadPolicy() if config.get("cpu_offload", False) else OffloadPolicy()
    reshard = bool(config.get("reshard_after_forward", True))

    layers = decoder_layers(model, config.get("layer_class"))
    for layer in layers:
        fully_shard(
            layer,
            mesh=mesh,
            mp_policy=policy,
            offload_policy=offload,
            reshard_after_forward=reshard,
        )
    for module in fp32_modules:
        fully_shard(
            module, mesh=mesh, mp_policy=fp32, offload_policy=offload, reshard_after_forward=reshard
        )
    # The root's parameters are needed first in backward: FSDP keeps them gathered (its default).
    fully_shard(model, mesh=mesh, mp_policy=policy, offload_policy=offload)
    return layers


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of a sharded `module`, on CPU, on global rank 0.

    A collective: every rank must call it. Other ranks get an empty dict.
    The tensors keep the stored dtype of the shards (fp32 master weights).
    Tied parameters (Qwen2.5-1.5B's embeddings and LM head) come back as one
    tensor under each of their names, as in an unsharded state dict, so that
    `save_pretrained` stores them once.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(
        module, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    names_of: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    for first, *aliases in names_of.values():
        for alias in aliases:
            if first in state:
                state[alias] = state[first]
    return state


def export_state_dict(trainer) -> dict[str, torch.Tensor]:
    """The trained LightningModule's full state dict, for writing an export.

    Under FSDP2 the shards are gathered (a collective: every rank calls this;
    rank 0 receives the tensors, the others an empty dict). Under other
    strategies it is the strategy's own state dict (DDP: the live weights).
    """
    from lightning.pytorch.strategies import ModelParallelStrategy

    if isinstance(trainer.strategy, ModelParallelStrategy):
        return full_state_dict(trainer.lightning_module)
    return trainer.strategy.lightning_module_state_dict()
