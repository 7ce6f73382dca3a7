"""One rank of the FSDP tests in tests/test_fsdp.py; torchrun starts two of them.

    torchrun --standalone --nproc-per-node 2 tests/scripts/fsdp_train.py SETTINGS_JSON OUT

Runs in the same two processes, one after the other, three fits of the stage
named in the settings under `modules.strategy.FSDP2Strategy`:

    full      uninterrupted, `max_steps`, a sharded checkpoint every step, exported at the end
    crashed   the same fit, stopped by an exception before step `crash_at`
    resumed   the crashed fit continued from its last checkpoint (`ckpt_path="last"`), exported

and writes OUT/rank<R>.pt: the global loss and gradient norm of every step,
the batches this rank trained on, the global and local shape of every
parameter, and the rank's local shards after "full" and after "resumed". The
test compares them with a single-process run. Last, `precision_probe` shards
a fresh copy with the round configs' bf16 policy and records the dtypes one
forward and backward see.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from modules.callbacks import GradNormMonitor
from modules.export import HFExport
from modules.strategy import FSDP2Strategy


class Interrupt(Exception):
    pass


class Recorder(Callback):
    """Global loss per step (mean over ranks, as the gradient sees it), batch fingerprints, a crash."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.batches: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.crash_at:
            raise Interrupt(f"simulated crash before step {self.crash_at}")
        self.batches.append(batch["input_ids"].sum(dim=1).tolist())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach().clone()
        torch.distributed.all_reduce(loss)
        self.losses.append(loss.item() / torch.distributed.get_world_size())
        self.grad_norms.append(trainer.callback_metrics["train/grad_norm"].item())


def build(
    settings: dict, model_dir: str | None = None
) -> tuple[L.LightningModule, L.LightningDataModule]:
    """The stage's module and datamodule as the test's single-process reference builds them too."""
    from datamodules import PairDataModule, SFTDataModule
    from modules import PolicyModule, PPMModule

    model_dir = model_dir or settings["model"]
    common = {
        "lr": settings["lr"],
        "warmup_steps": 1,
        "fsdp": settings.get("fsdp"),
        "gradient_checkpointing": settings.get("gradient_checkpointing", False),
    }
    if settings["stage"] == "policy":
        dm = SFTDataModule(
            model_dir, [settings["data"]], max_length=256, batch_size=settings["batch_size"], seed=0
        )
        return PolicyModule(model_dir, vocab_size=dm.vocab_size, **common), dm
    dm = PairDataModule(
        model_dir, [settings["data"]], max_length=256, batch_size=settings["batch_size"], seed=0
    )
    return PPMModule(model_dir, vocab_size=dm.vocab_size, **common), dm


def fit(settings: dict, run_dir: Path, recorder: Recorder, ckpt_path: str | None = None):
    L.seed_everything(0)
    module, dm = build(settings)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=FSDP2Strategy(),
        max_steps=settings["max_steps"],
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=run_dir,
        callbacks=[
            recorder,
            GradNormMonitor(),
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints", every_n_train_steps=1, save_last=True, save_top_k=0
            ),
            HFExport(str(run_dir / "export")),
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, module


def local_shards(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.to_local().detach().clone() for name, p in module.named_parameters()}


def precision_probe(settings: dict) -> dict:
    """Dtypes inside one forward/backward under `{param_dtype: bfloat16, reduce_dtype: float32}`."""
    from torch.distributed.device_mesh import init_device_mesh

    from modules.fsdp import decoder_layers
    from modules.losses import pairwise_preference_loss, response_lm_loss

    module, dm = build({**settings, "fsdp": {"param_dtype": "bfloat16", "reduce_dtype": "float32"}})
    module._device_mesh = init_device_mesh(
        "cpu", (2, 1), mesh_dim_names=("data_parallel", "tensor_parallel")
    )
    module.configure_model()
    seen = {}

    def record(key):
        def hook(mod, args, output):
            seen[key] = (mod.weight.dtype, args[0].dtype, output.dtype)

        return hook

    decoder_layers(module.model)[0].self_attn.q_proj.register_forward_hook(record("layer"))
    if settings["stage"] == "ppm":
        module.model.value_head.register_forward_hook(record("head"))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    if settings["stage"] == "policy":
        loss = response_lm_loss(module(batch), batch["labels"])
    else:
        values = module(batch["input_ids"], batch["attention_mask"])
        seen["values"] = values.dtype
        loss = pairwise_preference_loss(*values.chunk(2))[0]
    loss.backward()
    seen["master"] = sorted({str(p.dtype) for p in module.parameters()})
    seen["grads"] = sorted({str(p.grad.dtype) for p in module.parameters() if p.grad is not None})
    return {
        k: tuple(map(str, v))
        if isinstance(v, tuple)
        else str(v)
        if isinstance(v, torch.dtype)
        else v
        for k, v in seen.items()
    }


def main(settings: dict, out: Path) -> None:
    full = Recorder()
    trainer, module = fit(settings, out / "full", full)
    rank = trainer.global_rank
    shapes = {
        name: (tuple(p.shape), tuple(p.to_local().shape), type(p).__name__)
        for name, p in module.named_parameters()
    }
    shards_full = local_shards(module)

    crashed = Recorder(crash_at=settings["crash_at"])
    try:
        fit(settings, out / "crashed", crashed)
        raise AssertionError("the crashed run did not crash")
    except Interrupt:
        pass
    resumed = Recorder()
    trainer, module = fit(settings, out / "crashed", resumed, ckpt_path="last")

    torch.save(
        {
            "losses": full.losses,
            "grad_norms": full.grad_norms,
            "batches": {
                "full": full.batches,
                "crashed": crashed.batches,
                "resumed": resumed.batches,
            },
            "global_step": trainer.global_step,
            "shapes": shapes,
            "shards": {"full": shards_full, "resumed": local_shards(module)},
            "world_size": trainer.world_size,
            "precision": precision_probe(settings),
        },
        out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), Path(sys.argv[2]))
