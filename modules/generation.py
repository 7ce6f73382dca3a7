"""Generation between epochs: the model being trained writes its next training data.

`GenerateBetweenEpochs` is a Lightning callback for a `fit` config
(`trainer.callbacks`). At the end of every `every_n_epochs`-th epoch it

1. exports the current weights, exactly as `HFExport` does at the end of
   training (a policy as a Hugging Face folder, a PPM as backbone + value head),
   to `out_dir/epoch-EEE/policy` (or `.../ppm`);
2. builds the generation run of `generate` (a `rstar-pl generate` config file,
   or its fields, or both) with that export: a policy becomes the backend
   (vLLM where installed, else transformers; or the config's own backend, e.g.
   the scripted one in tests), a PPM becomes the scorer;
3. runs the search over the config's problems into tree shards in
   `out_dir/epoch-EEE/trees` (`rstar_pl.generate`: lock-step MCTS, one tree per
   line, resumable);
4. extracts SFT records, pairs and difficulty into `out_dir/epoch-EEE/`
   (`rstar_pl.data.extraction`);
5. points the datamodule at the new records (`sft.jsonl` for an SFT
   datamodule, `pairs.jsonl` for a pair datamodule), so that the loaders
   Lightning rebuilds at the next epoch serve them. This needs
   `trainer.reload_dataloaders_every_n_epochs` equal to `every_n_epochs`;
   the callback refuses to start otherwise.

No generation follows the last epoch (its data would never be used). When an
extraction yields no record (nothing solved), the datamodule keeps its data.

Memory: the generation backend and the sandbox are built for the run and
dropped after it (`gc.collect()`, and `torch.cuda.empty_cache()` on GPUs)
before training continues; the log (and `generation.json`) says the
process's resident memory before and after, and its peak so far. On a GPU the training process keeps its weights, gradients and
optimiser state while the engine runs beside it: give vLLM only what is left,
e.g. `generate: {backend: {args: {gpu_memory_utilization: 0.3}}}`, or
generation with a 7B policy will not fit next to a 7B training.

Resuming: the callback's state (which records the datamodule serves) is saved
in Lightning checkpoints and restored before the loaders are built. An
interrupted generation resumes in the same folder without regenerating the
trees it finished (`rstar_pl.generate` skips them), and with the same export
(an existing `epoch-EEE` export is reused, so the remaining trees come from the
same weights as the finished ones). Under DDP rank 0 generates and the other
ranks wait, then every rank reloads the same files.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

from rstar_pl.data.records import read_records
from rstar_pl.errors import UserError
from rstar_pl.files import write_json

__all__ = ["GenerateBetweenEpochs", "resident_mib"]

log = logging.getLogger(__name__)

#: the generation backend for the exported policy; "config" keeps the config's
#: backend (only its `model` argument is pointed at the export, unless scripted)
BackendChoice = Literal["auto", "vllm", "hf", "config"]

#: written in a generation's folder once its records are extracted: the generation is complete
MARKER = "generation.json"

_BACKENDS = {
    "vllm": "rstar_pl.backends.vllm:VLLMBackend",
    "hf": "rstar_pl.backends.hf:HFBackend",
}


def resident_mib(field: str = "VmRSS") -> float | None:
    """This process's resident memory in MiB (Linux), None where unknown.

    `field` "VmHWM" gives the peak so far instead of the current value.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _deep_merge(base: dict, override: dict) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(base, override), resolve=False)


class GenerateBetweenEpochs(Callback):
    """Generate new training data with the current weights between epochs (see the module doc).

    Args:
        generate: a `rstar-pl generate` config file (`configs/search/round2.yaml`),
            or a mapping of its fields; a mapping may name a base file under
            `config` and override some of its fields.
        out_dir: the run folder; each generation goes to `out_dir/epoch-EEE/`.
        every_n_epochs: generate after every n-th epoch (and never after the last).
        backend: how the exported policy generates: "auto" (vLLM when it is
            installed, else transformers), "vllm", "hf", or "config" (the
            config's backend, with its `model` argument set to the export;
            a scripted backend is used as it is).
        extract: options of `rstar-pl extract` (`min_margin`, `min_edit`,
            `sft_per_problem`, `pairs_per_side`).
    """

    def __init__(
        self,
        generate: str | dict[str, Any],
        out_dir: str,
        every_n_epochs: int = 1,
        backend: BackendChoice = "auto",
        extract: dict[str, Any] | None = None,
    ) -> None:
        if every_n_epochs < 1:
            raise UserError(
                f"GenerateBetweenEpochs: every_n_epochs must be >= 1, got {every_n_epochs}"
            )
        if backend not in ("auto", "vllm", "hf", "config"):
            raise UserError(
                f"GenerateBetweenEpochs: backend {backend!r}; allowed: auto, vllm, hf, config"
            )
        self.generate = generate
        self.out_dir = Path(out_dir)
        self.every_n_epochs = every_n_epochs
        self.backend = backend
        self.extract = dict(extract or {})
        self.served: list[str] | None = None
        """the training files the datamodule serves since the last generation (None: its own)"""
        self.generations: list[dict[str, Any]] = []
        """one summary per generation: epoch, folder, counts, records, memory"""

    # ---- Lightning hooks -------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        reload = trainer.reload_dataloaders_every_n_epochs
        if reload != self.every_n_epochs:
            raise UserError(
                f"GenerateBetweenEpochs(every_n_epochs={self.every_n_epochs}) needs "
                f"trainer.reload_dataloaders_every_n_epochs: {self.every_n_epochs} (got {reload}), "
                "or the new data would not be served"
            )
        if not hasattr(trainer.datamodule, "use_train_files"):
            raise TypeError(
                "GenerateBetweenEpochs needs a datamodule with use_train_files() "
                "(datamodules.SFTDataModule or datamodules.PairDataModule)"
            )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After a restore: serve what the interrupted run served.
        if self.served:
            trainer.datamodule.use_train_files(self.served)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run restored from a checkpoint taken after the last batch of an epoch goes
        # straight to the next epoch, without that epoch's end: a generation due then and
        # interrupted is finished here, before the next epoch's loaders are built.
        due = [e for e in range(trainer.current_epoch) if self._due(trainer, e)]
        if due and not (self._folder(due[-1]) / MARKER).is_file():
            self._run(trainer, pl_module, due[-1])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._due(trainer, trainer.current_epoch):
            self._run(trainer, pl_module, trainer.current_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"served": self.served, "generations": self.generations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.served = state_dict.get("served")
        self.generations = list(state_dict.get("generations") or [])

    def _due(self, trainer: L.Trainer, epoch: int) -> bool:
        """A generation follows `epoch`: every n-th epoch, but not the last one."""
        last = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= epoch + 1
        return (epoch + 1) % self.every_n_epochs == 0 and not last and not trainer.should_stop

    def _folder(self, epoch: int) -> Path:
        return self.out_dir / f"epoch-{epoch:03d}"

    def _run(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        """Generate after `epoch` (or read the finished generation) and serve its records."""
        folder = self._folder(epoch)
        marker = folder / MARKER
        summary: dict[str, Any] | None = None
        if marker.is_file():
            summary = json.loads(marker.read_text(encoding="utf-8"))
        else:
            export = self._export(trainer, pl_module, folder)
            if trainer.is_global_zero:
                summary = self._generate(trainer, pl_module, folder, export, epoch)
            summary = trainer.strategy.broadcast(summary, src=0)
            self.generations.append(summary)
        if summary["records"]:
            self.served = [summary["served"]]
            trainer.datamodule.use_train_files(self.served)
        else:
            log.warning(
                "generation after epoch %d gave no records; the datamodule keeps its data", epoch
            )

    # ---- the steps -------------------------------------------------------------------

    def _export(self, trainer: L.Trainer, pl_module: L.LightningModule, folder: Path) -> Path:
        from modules.export import export_module
        from modules.ppm import PPMModule

        export = folder / ("ppm" if isinstance(pl_module, PPMModule) else "policy")
        # An export left by an interrupted run is complete (written atomically): the
        # remaining trees come from the same weights as the finished ones.
        if not (export / "config.json").is_file():
            export_module(trainer, pl_module, export)
        return export

    def _config(self, pl_module: L.LightningModule, folder: Path, export: Path) -> dict[str, Any]:
        """The generation config as a mapping: base file, overrides, this run's paths."""
        import yaml

        from modules.ppm import PPMModule

        spec = self.generate
        if isinstance(spec, str):
            spec = {"config": spec}
        spec = dict(spec)
        base_file = spec.pop("config", None)
        values: dict[str, Any] = {}
        if base_file is not None:
            path = Path(base_file)
            if not path.is_file():
                raise FileNotFoundError(
                    f"GenerateBetweenEpochs: generate config {path} does not exist"
                )
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        values = _deep_merge(values, spec)
        values["out_dir"] = str(folder / "trees")
        if isinstance(pl_module, PPMModule):
            values["scorer"] = {
                "kind": "rstar_pl.backends.ppm:PPMScorer.from_path",
                "args": {**(values.get("scorer") or {}).get("args", {}), "path": str(export)},
            }
            return values
        backend = dict(values.get("backend") or {})
        args = dict(backend.get("args") or {})
        choice = self.backend
        if choice == "auto":
            choice = "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
        if choice == "config":
            if backend.get("kind", "scripted") != "scripted":
                args["model"] = str(export)
        else:
            if backend.get("kind") != _BACKENDS[choice]:
                args = {}
            backend["kind"] = _BACKENDS[choice]
            args["model"] = str(export)
            if choice == "hf":
                args.setdefault("device", str(pl_module.device))
        backend["args"] = args
        values["backend"] = backend
        return values

    def _generate(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        folder: Path,
        export: Path,
        epoch: int,
    ) -> dict[str, Any]:
        from rstar_pl import extract as extract_command
        from rstar_pl.generate import generate, parse_mapping

        config, dumped = parse_mapping(self._config(pl_module, folder, export), f"{folder}")
        before = resident_mib()
        was_training = pl_module.training
        pl_module.eval()
        try:
            counts = generate(config, dumped=dumped)
        finally:
            pl_module.train(was_training)
            gc.collect()
            _empty_accelerator_cache()
        after, peak = resident_mib(), resident_mib("VmHWM")
        argv = ["--trees", config.out_dir, "--out", str(folder)]
        for key, value in self.extract.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        extract_command.main(argv)
        records = folder / f"{getattr(trainer.datamodule, 'records', 'sft')}.jsonl"
        count = len(read_records(records))
        summary = {
            "epoch": epoch,
            "served": str(records),
            "records": count,
            "trees": counts,
            "rss_mib_before": before,
            "rss_mib_after": after,
            "rss_mib_peak": peak,
        }
        log.info(
            "generation after epoch %d: %d new trees (%d solved), %d records in %s; resident "
            "memory %s MiB before, %s MiB after (peak so far %s MiB)",
            epoch,
            counts["written"],
            counts["solved"],
            count,
            records,
            _mib(before),
            _mib(after),
            _mib(peak),
        )
        write_json(folder / MARKER, summary, indent=1)
        return summary


def _empty_accelerator_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _mib(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"
