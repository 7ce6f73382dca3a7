"""The training strategy for FSDP2: Lightning's `ModelParallelStrategy`, data-parallel only.

    trainer:
      strategy:
        class_path: modules.strategy.FSDP2Strategy

Two things differ from `lightning.pytorch.strategies.ModelParallelStrategy`,
which it subclasses (everything else, including the launch, the device mesh and
the distributed checkpoints, is Lightning's):

* `data_parallel_size` defaults to the whole world (devices x num_nodes) and
  `tensor_parallel_size` to 1, so a config does not repeat the device count and
  `--trainer.num_nodes N` is all a multi-node run changes. (Lightning's
  "auto" means tensor-parallel inside a node, which these modules do not do.)
* A sharded checkpoint (a folder: one file per rank plus metadata, written by
  `torch.distributed.checkpoint`) is written into a temporary sibling folder
  and renamed into place once every rank has finished, so an interrupted save
  never leaves a half-overwritten `last.ckpt` behind (Lightning writes into the
  folder in place). The folder must be on a file system every rank sees.

The modules shard themselves in `configure_model` (`modules.fsdp`); under this
strategy `--ckpt_path last` resumes from the folder as from a file.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.strategies import ModelParallelStrategy

from rstar_pl.errors import UserError
from rstar_pl.files import replace_folder

__all__ = ["FSDP2Strategy"]


class FSDP2Strategy(ModelParallelStrategy):
    """FSDP2 over every process (see the module docstring).

    Args:
        data_parallel_size: processes that shard the model; "auto" (default):
            all of them, `devices * num_nodes`.
        tensor_parallel_size: must stay 1 (the modules shard data-parallel only).
        save_distributed_checkpoint: true (default): each rank writes its own
            shard of weights and optimiser state (fast, no full copy anywhere);
            false: rank 0 gathers everything into one file.
        process_group_backend: "nccl" on GPUs and "gloo" on CPUs by default.
        timeout: of collective operations.
    """

    def __init__(
        self,
        data_parallel_size: Literal["auto"] | int = "auto",
        tensor_parallel_size: int = 1,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        if tensor_parallel_size != 1:
            raise UserError(
                f"trainer.strategy.init_args.tensor_parallel_size is {tensor_parallel_size}; allowed: 1 "
                "(PolicyModule and PPMModule shard data-parallel only)"
            )
        super().__init__(
            data_parallel_size=data_parallel_size,
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=timeout,
        )

    def setup_environment(self) -> None:
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        filepath: str | os.PathLike,
        storage_options: Any | None = None,
    ) -> None:
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        final = Path(self.broadcast(str(filepath)))
        tmp = final.with_name(f".{final.name}.partial")
        if self.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
        self.barrier()
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier()
        if self.is_global_zero:
            replace_folder(tmp, final)
        self.barrier()
