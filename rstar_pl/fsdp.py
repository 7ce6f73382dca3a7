"""Removed: the FSDP1 strategy `rstar_pl.fsdp.DecoderLayerFSDP`; kept for one release to say so.

It wrapped Lightning's `FSDPStrategy` (FSDP1), which refuses CPUs and so was
never trained or tested here. FSDP is now FSDP2 (`torch.distributed.fsdp.fully_shard`)
through Lightning's `ModelParallelStrategy`, tested on CPU with two processes:

    trainer:
      strategy:
        class_path: modules.strategy.FSDP2Strategy
      precision: 32-true
    model:
      init_args:
        gradient_checkpointing: true        # was activation_checkpointing
        fsdp:                               # was layer_class (now found from the model)
          param_dtype: bfloat16
          reduce_dtype: float32

A config that still names the old class fails with that message. This file
goes in the release after next.
"""

from __future__ import annotations

from lightning.pytorch.strategies import ModelParallelStrategy

from rstar_pl.errors import UserError

__all__ = ["DecoderLayerFSDP"]

_MESSAGE = (
    "trainer.strategy class_path rstar_pl.fsdp.DecoderLayerFSDP (FSDP1) was removed; use "
    "`class_path: modules.strategy.FSDP2Strategy` with `precision: 32-true`, and put the mixed "
    "precision and layer settings under model.init_args.fsdp (e.g. {param_dtype: bfloat16, "
    "reduce_dtype: float32}) and activation checkpointing in model.init_args.gradient_checkpointing "
    "(see configs/round1.yaml)"
)


class DecoderLayerFSDP(ModelParallelStrategy):
    """Refuses to be built; its message names the replacement (module docstring).

    A Strategy subclass only so that LightningCLI accepts the class path and
    this message, rather than a type error, is what the user reads.
    """

    def __init__(
        self,
        layer_class: str = "transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer",
        activation_checkpointing: bool = True,
        sharding_strategy: str = "FULL_SHARD",
        state_dict_type: str = "full",
        cpu_offload: bool = False,
    ) -> None:
        # The old signature, so that old configs parse and reach this message.
        raise UserError(_MESSAGE)
