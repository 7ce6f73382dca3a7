"""FSDP for decoder-only Hugging Face models, configurable from YAML.

Lightning's `FSDPStrategy` takes the auto-wrap and activation-checkpointing
policies as sets of classes, which a YAML file cannot name directly. This
subclass takes the decoder layer's import path instead:

    trainer:
      strategy:
        class_path: rstar_pl.fsdp.DecoderLayerFSDP
        init_args:
          layer_class: transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer

Each decoder layer becomes one FSDP unit and (optionally) one activation
checkpoint; checkpoints and exports use the full (unsharded) state dict, so the
`HFExport` callback can write an ordinary Hugging Face folder. Multi-node is
`trainer.num_nodes`. Lightning refuses FSDP on CPU: use `strategy: ddp` there.
"""

from __future__ import annotations

import importlib

from lightning.pytorch.strategies import FSDPStrategy

__all__ = ["DecoderLayerFSDP", "import_class"]


def import_class(path: str) -> type:
    """`"package.module.Class"` -> the class, with a clear error when it does not exist."""
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(
            f"trainer.strategy.init_args.layer_class {path!r} is not an importable class; "
            "expected e.g. transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer"
        ) from None


class DecoderLayerFSDP(FSDPStrategy):
    """`FSDPStrategy` wrapping (and checkpointing) each decoder layer.

    Args:
        layer_class: import path of the model's decoder layer class.
        activation_checkpointing: recompute each layer's activations in backward.
        sharding_strategy: "FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD" or "NO_SHARD".
        state_dict_type: "full" (one file, what the exports need) or "sharded".
        cpu_offload: keep parameters on CPU between uses.
    """

    def __init__(
        self,
        layer_class: str = "transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer",
        activation_checkpointing: bool = True,
        sharding_strategy: str = "FULL_SHARD",
        state_dict_type: str = "full",
        cpu_offload: bool = False,
    ) -> None:
        layer = import_class(layer_class)
        super().__init__(
            auto_wrap_policy={layer},
            activation_checkpointing_policy={layer} if activation_checkpointing else None,
            sharding_strategy=sharding_strategy,
            state_dict_type=state_dict_type,
            cpu_offload=cpu_offload,
        )
        self.layer_class = layer
