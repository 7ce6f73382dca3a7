"""FSDP2 on CPU: two gloo processes train each stage through `modules.strategy.FSDP2Strategy`.

For the policy and for the PPM, torchrun starts two ranks of
tests/scripts/fsdp_train.py (an uninterrupted fit, a crashed fit and its
resume); this file runs the same stage in one process with the same global
batch and compares:

* losses and gradient norms: FSDP gives the single-process values, step by
  step, within LOSS_RTOL and GRAD_NORM_RTOL;
* sharding: each rank holds its `torch.chunk` half (dim 0) of every parameter;
* resume: the crashed + resumed run sees the uninterrupted run's batches and
  ends with bit-identical shards;
* export: the Hugging Face folder written at the end holds exactly the
  gathered shards, in the same files, keys, shapes and dtypes as the
  single-process export (so transformers and vLLM load it the same way);
* mixed precision: under the round configs' policy, layers compute in bf16,
  master weights and gradients stay fp32, and so does the PPM's value head.

Then the round config's own FSDP setting (bf16) trains the policy under
torchrun (the multi-node launcher, on one node), and the round command on two
processes resumes it with `--ckpt_path last` and trains the PPM.

Why FSDP and one process can differ at all, and by how much
-----------------------------------------------------------
Same model, same examples in each global batch (the DistributedSampler and the
single-process sampler draw the same permutation from the same seed; each rank
gets every other index of it), fp32 throughout. The remaining differences are
rounding, of three kinds:

1. Reduction order. The gradient is the mean of two per-rank gradients, summed
   by the reduce-scatter, instead of one backward over four rows; the clip
   norm and the logged loss are also sums in another order. fp32 addition is
   not associative: each reordered sum differs by a few ulp (2^-24 ~ 6e-8
   relative).
2. Padding per rank. Each rank pads its two rows to its own longest one, the
   single process to the longest of four, so the matrix products run on other
   shapes and block differently: again ulp-level differences per value.
   Padding never changes a loss otherwise: padded positions carry no label
   and, under right padding and a causal mask, are never attended to.
3. The per-rank mean. The policy loss is a token mean per rank, and DDP/FSDP
   average the ranks. That equals the global token mean only when both ranks
   hold the same number of response tokens; with unequal counts the objective
   itself differs (each rank weighs equally), which is not rounding. The test
   data therefore gives every response the same token count (prompts still
   differ, so padding still differs); the PPM loss is a mean over pairs, and
   every rank holds the same number of pairs.

How far rounding travels: AdamW divides each gradient element by its own
running magnitude, so a relative rounding error in a gradient stays a relative
error in the update (of size lr = 1e-3), except for elements whose gradient is
itself near rounding level or below Adam's eps (1e-8), where the update is
lr * g / eps and rounding moves it by lr * dg / eps. Over 6 steps the weights
therefore drift apart by far more than ulps but far less than one update.
Measured on the CI machine kind (fp32, OpenBLAS/oneDNN on x86-64): losses at
most 2.4e-7 (policy) and 3.8e-7 (PPM) relative, gradient norms 8e-7 and
4.1e-6 relative, weights 1.5e-6 and 7.5e-6 absolute. The tolerances keep 10x
or more headroom for other CPUs' kernels: LOSS_RTOL 1e-5, GRAD_NORM_RTOL 5e-5,
WEIGHT_ATOL 1e-4 (a tenth of one step's update). Faults move far more: one
skipped or repeated step changes the loss by its step-to-step change here
(1e-2 or more) and weights by ~lr; gradients summed instead of averaged over
the ranks would pass the losses (Adam is scale-invariant) but double the
gradient norm; and the per-rank mean over unequal token counts (point 3)
moved the first loss by 2.8e-5 relative on SFT data of unequal response
lengths (the resume test's), above LOSS_RTOL.

Exact checks (no tolerance): the export against the gathered shards, the
resumed run against the uninterrupted one (same processes, same order of
operations, so bit-identical), and the shard shapes.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from modules.callbacks import GradNormMonitor
from modules.export import HFExport

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests/scripts/fsdp_train.py"
LOSS_RTOL = 1e-5
GRAD_NORM_RTOL = 5e-5
WEIGHT_ATOL = 1e-4
MAX_STEPS = 6  # 16 examples, global batch 4: 4 steps an epoch, so the run crosses an epoch
CRASH_AT = 3  # mid-epoch


def _script():
    spec = importlib.util.spec_from_file_location("fsdp_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _equal_length_sft(tokenizer, path: Path, n: int = 16) -> None:
    """n SFT records whose responses (EOS included) all have the same token count."""
    candidates = collections.defaultdict(list)
    for a in range(2, 60):
        b = 3 + a % 7
        response = (
            f"<code>\nx = {a} * {b}\n<end_of_step>\nprint(x)\n<end_of_code>\n"
            f"<output>{a * b}<end_of_output>\n<answer>\\boxed{{{a * b}}}<end_of_answer>"
        )
        length = len(tokenizer(response, add_special_tokens=False)["input_ids"])
        question = f"What is {a} times {b}?" + " Show the code." * (
            a % 3
        )  # prompts differ in length
        candidates[length].append(
            {
                "problem_id": f"p{a}",
                "question": question,
                "response": response,
                "mean_q": 1.0,
                "min_q": 1.0,
            }
        )
    records = max(candidates.values(), key=len)[:n]
    assert len(records) == n
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _pairs(path: Path, n: int = 16) -> None:
    lines = []
    for a in range(2, 2 + n):
        prompt = (
            f"<|user|>:\nWhat is {a} times {a + 1}?"
            + " Be careful." * (a % 3)
            + "\n<|assistant|>: Let's think step by step and solve the problem with code.<code>\n"
        )
        lines.append(
            json.dumps(
                {
                    "problem_id": f"p{a}",
                    "prompt": prompt,
                    "kind": "step",
                    "chosen_q": 0.8,
                    "rejected_q": -0.6,
                    "chosen": f"# Step 1: multiply {a} by {a + 1}\nx = {a} * {a + 1}\n<end_of_step>",
                    "rejected": f"# Step 1: add {a} and {a + 1}\nx = {a} + {a + 1}\n<end_of_step>",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")


class _Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.grad_norms: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())
        self.grad_norms.append(trainer.callback_metrics["train/grad_norm"].item())


def _single_process(settings: dict, out: Path) -> tuple[_Losses, dict[str, torch.Tensor]]:
    """The same stage in one process, global batch = 2 ranks x their batch."""
    L.seed_everything(0)
    module, dm = _script().build(
        {**settings, "batch_size": 2 * settings["batch_size"], "gradient_checkpointing": False}
    )
    losses = _Losses()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=settings["max_steps"],
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[losses, GradNormMonitor(), HFExport(str(out))],
    )
    trainer.fit(module, datamodule=dm)
    return losses, {k: v.detach().clone() for k, v in module.state_dict().items()}


def _torchrun(settings: dict, out: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc-per-node=2",
        str(SCRIPT),
        json.dumps(settings),
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update({f"{file.name}:{k}": v for k, v in load_file(file).items()})
    return state


def _check_stage(settings: dict, tmp_path: Path, load_export) -> None:
    ref, ref_state = _single_process(settings, tmp_path / "single")
    ranks = _torchrun(settings, tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]

    # Losses and gradient norms: one global batch per step, the same examples, within
    # rounding (module docstring); the norm is the whole model's, not a rank's shard's.
    for rank in ranks:
        assert len(rank["losses"]) == settings["max_steps"]
        for key, rtol in (("losses", LOSS_RTOL), ("grad_norms", GRAD_NORM_RTOL)):
            torch.testing.assert_close(
                torch.tensor(rank[key], dtype=torch.float64),
                torch.tensor(getattr(ref, key), dtype=torch.float64),
                rtol=rtol,
                atol=0,
                msg=key,
            )
    # The model learned something in those steps, so equal losses are not equal constants.
    assert ref.losses[-1] < ref.losses[0] - 1e-3

    # Sharding: every parameter is a DTensor and each rank holds its half of dim 0.
    exported = load_export(tmp_path / "full" / "export")
    gathered = {
        name: torch.cat([r["shards"]["full"][name] for r in ranks]) for name in ranks[0]["shapes"]
    }
    for name, (shape, _, kind) in ranks[0]["shapes"].items():
        assert kind == "DTensor", name
        halves = [len(c) for c in torch.ones(shape[0]).chunk(2)] + [0]
        for r, rank in enumerate(ranks):
            assert rank["shapes"][name][1] == (halves[r], *shape[1:]), (
                name,
                r,
                rank["shapes"][name],
            )
        assert gathered[name].shape == shape
    local = sum(t.numel() for t in ranks[0]["shards"]["full"].values())
    total = sum(t.numel() for t in gathered.values())
    assert abs(local / total - 0.5) < 0.01, local / total

    # Export: exactly the gathered shards, and the same weights as one process within rounding.
    assert set(exported) == {name.removeprefix("model.") for name in gathered}
    for name, tensor in gathered.items():
        key = name.removeprefix("model.")
        assert torch.equal(exported[key], tensor), name
        torch.testing.assert_close(
            exported[key], ref_state[name], atol=WEIGHT_ATOL, rtol=0, msg=name
        )
    fsdp_files, ref_files = (
        _safetensors(tmp_path / "full" / "export"),
        _safetensors(tmp_path / "single"),
    )
    assert {k: (v.shape, v.dtype) for k, v in fsdp_files.items()} == {
        k: (v.shape, v.dtype) for k, v in ref_files.items()
    }
    assert sorted(p.name for p in (tmp_path / "full" / "export").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )

    # Resume: a sharded last.ckpt folder; the same batches in order; bit-identical final weights.
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert last.is_dir() and (last / "meta.pt").is_file() and (last / ".metadata").is_file()
    assert not list(last.parent.glob(".*partial*")), "a temporary checkpoint folder was left behind"
    for rank in ranks:
        batches = rank["batches"]
        assert len(batches["crashed"]) == CRASH_AT
        assert batches["crashed"] + batches["resumed"] == batches["full"]
        assert rank["global_step"] == settings["max_steps"]
        for name, tensor in rank["shards"]["full"].items():
            assert torch.equal(rank["shards"]["resumed"][name], tensor), name
    resumed = load_export(tmp_path / "crashed" / "export")
    for key, tensor in exported.items():
        assert torch.equal(resumed[key], tensor), key

    # Mixed precision as the round configs set it: decoder layers compute in bf16 (weights,
    # inputs, outputs), while the sharded master weights and their gradients stay fp32.
    for rank in ranks:
        probe = rank["precision"]
        assert probe["layer"] == ("torch.bfloat16",) * 3
        assert probe["master"] == ["torch.float32"] and probe["grads"] == ["torch.float32"]
    return ranks


def test_policy_fsdp_two_processes_matches_one(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from modules.tokenizer import load_tokenizer

    data = tmp_path / "sft.jsonl"
    _equal_length_sft(load_tokenizer(str(tiny_model_dir)), data)
    settings = {
        "stage": "policy",
        "model": str(tiny_model_dir),
        "data": str(data),
        "batch_size": 2,
        "lr": 1e-3,
        "max_steps": MAX_STEPS,
        "crash_at": CRASH_AT,
        "gradient_checkpointing": True,
    }

    def load_export(folder: Path) -> dict[str, torch.Tensor]:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        # Tied embeddings: the export stores one matrix; the module's parameters name it once.
        return dict(model.named_parameters())

    _check_stage(settings, tmp_path, load_export)


def test_ppm_fsdp_two_processes_matches_one(tiny_model_dir, tmp_path):
    from modules.value_model import ValueHeadModel

    data = tmp_path / "pairs.jsonl"
    _pairs(data)
    settings = {
        "stage": "ppm",
        "model": str(tiny_model_dir),
        "data": str(data),
        "batch_size": 2,
        "lr": 1e-3,
        "max_steps": MAX_STEPS,
        "crash_at": CRASH_AT,
    }

    def load_export(folder: Path) -> dict[str, torch.Tensor]:
        return dict(ValueHeadModel.load(folder).named_parameters())

    ranks = _check_stage(settings, tmp_path, load_export)
    # The value head is the exception to bf16: its weights, input and values are fp32.
    for rank in ranks:
        assert rank["precision"]["head"] == ("torch.float32",) * 3
        assert rank["precision"]["values"] == "torch.float32"


def test_round_config_fsdp_setting_trains_both_stages_and_resumes_through_the_cli(
    tiny_model_dir, tmp_path
):
    """The round config's own strategy and FSDP settings (bf16 compute), on two CPU processes:
    the policy under torchrun (as on a cluster, one node here), then the round command resumes
    it with `--ckpt_path last` and trains the PPM from its export."""
    from modules.export import load_policy
    from rstar_pl.backends.ppm import PPMScorer
    from rstar_pl.train import load_round_config

    round2 = ROOT / "configs/round2.yaml"
    config = load_round_config([str(round2)])
    run = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "rstar_pl",
        "fit",
        "--config",
        str(round2),
        "--config",
        str(ROOT / "configs/tiny.yaml"),
        f"--run_dir={run}",
        f"--tiny_model={tiny_model_dir}",
        f"--data_dir={ROOT / 'configs/tiny_data'}",
    ]
    # tiny.yaml switches to one process; put the round's GPU strategy back, on two CPU processes.
    for stage in ("policy", "ppm"):
        base += [
            f"--{stage}.trainer.strategy={json.dumps(config[stage]['trainer']['strategy'])}",
            f"--{stage}.trainer.devices=2",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def fit(*extra: str, launcher: tuple[str, ...] = ()) -> str:
        cmd = [*base[:1], *launcher, *base[1:], *extra]
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc.stdout + proc.stderr

    def step(stage: str) -> int:
        last = run / "checkpoints" / stage / "last.ckpt"
        assert last.is_dir() and (last / ".metadata").is_file(), (
            f"{last} is not a sharded checkpoint"
        )
        return torch.load(last / "meta.pt", weights_only=False)["global_step"]

    # torchrun starts both ranks; each runs the round command, which takes one stage per launch.
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=2")
    fit("--stage", "policy", "--policy.trainer.max_steps=4", launcher=torchrun)
    assert step("policy") == 4 and not (run / "ppm").exists()

    # The round command: Lightning starts the two processes of each stage. The policy resumes at
    # step 4, in the middle of its second epoch (3 batches a rank), and ends at tiny.yaml's 6;
    # the PPM has no checkpoint yet, so it starts from the policy's export.
    log = fit("--ckpt_path", "last")
    assert log.count("Starting with 2 processes") == 2, log[-2000:]
    assert "Restoring states from the checkpoint path" in log and "policy/last.ckpt" in log, log[
        -2000:
    ]
    # PPM: one epoch of 12 - 2 held-out pairs, 5 a rank in batches of 4.
    assert step("policy") == 6 and step("ppm") == 2
    for stage in ("policy", "ppm"):
        saved = yaml.safe_load((run / "config" / f"{stage}.yaml").read_text())
        assert saved["trainer"]["strategy"] == {"class_path": "modules.strategy.FSDP2Strategy"}
        assert saved["model"]["init_args"]["fsdp"] == {
            "param_dtype": "bfloat16",
            "reduce_dtype": "float32",
        }
    # Validation ran sharded, and so did the sample generations (every rank generates in step).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(max((run / "logs" / "policy").glob("version_*"))))
    events.Reload()
    tags = set(events.Tags()["scalars"]) | set(events.Tags().get("tensors", []))
    assert {"val/loss", "train/grad_norm", "samples/text_summary"} <= tags, tags
    # Exports as an unsharded run writes them: transformers loads the policy, the scorer the PPM.
    model, tokenizer = load_policy(run / "policy")
    assert model.config.num_hidden_layers == 4 and "<end_of_step>" in tokenizer.get_vocab()
    values = PPMScorer.from_path(run / "ppm").score(
        ["<|user|>:\nq\n<|assistant|>: <code>\nx = 1\n<end_of_step>"]
    )
    assert len(values) == 1 and -1 <= values[0] <= 1
    # A sharded checkpoint is for resuming; loading it as a model says how to consolidate it.
    with pytest.raises(ValueError, match="consolidate_checkpoint"):
        load_policy(run / "checkpoints" / "policy" / "last.ckpt")


def test_gpu_check_runs_the_round_config_fsdp_setting(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    """benchmarks/gpu_check.py's stage configs parse, and keep the round's FSDP2 setting (bf16)."""
    from argparse import Namespace

    from rstar_pl.train import _lightning_cli, _write_yaml, load_round_config

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gpu_check

    args = Namespace(accelerator="gpu", steps=12, seq=4096, batch_size=2, pairs=8)
    override = tmp_path / "gpu_check.yaml"
    _write_yaml(override, gpu_check._override(args, tmp_path, tiny_model_dir, devices=8))
    config = load_round_config([str(ROOT / "configs/round2.yaml"), str(override)])
    assert config["ppm"]["model"]["init_args"]["model"] == str(tmp_path / "run" / "policy")
    for stage in ("policy", "ppm"):
        stage_file = tmp_path / f"{stage}.yaml"
        _write_yaml(stage_file, config[stage])
        with pytest.raises(SystemExit) as exit_:
            _lightning_cli("fit", ["--config", str(stage_file), "--print_config"])
        assert exit_.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        trainer = printed["trainer"]
        assert trainer["strategy"]["class_path"] == "modules.strategy.FSDP2Strategy"
        assert (
            trainer["devices"] == 8
            and trainer["precision"] == "32-true"
            and trainer["max_steps"] == 12
        )
        assert printed["model"]["init_args"]["fsdp"] == {
            "param_dtype": "bfloat16",
            "reduce_dtype": "float32",
        }
        assert printed["model"]["init_args"]["gradient_checkpointing"] is True
        timers = [cb for cb in trainer["callbacks"] if cb["class_path"] == "gpu_check.StepTimer"]
        assert [t["init_args"]["stage"] for t in timers] == [stage]
        assert any(cb["class_path"] == "modules.export.HFExport" for cb in trainer["callbacks"])


def test_a_torchrun_launch_trains_one_stage_at_a_time(monkeypatch, tmp_path):
    """A second stage in the same torchrun launch would hang at its rendezvous; it is refused."""
    from rstar_pl.train import RoundConfigError, load_round_config, run_round

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    config = load_round_config([str(ROOT / "configs/round2.yaml")], {"run_dir": str(tmp_path)})
    with pytest.raises(RoundConfigError, match="--stage policy, then .* --stage ppm"):
        run_round(config)
    assert not (tmp_path / "config").exists()  # refused before anything was written or started


def test_decoder_layers_come_from_the_model_or_the_config(tiny_model_dir):
    from modules.fsdp import decoder_layers, shard_model
    from modules.hf import load_backbone
    from modules.value_model import ValueHeadModel

    causal = load_backbone(str(tiny_model_dir), head=True)
    assert decoder_layers(causal) == list(causal.model.layers)  # from _no_split_modules
    path = "transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer"
    assert (
        decoder_layers(causal, "Qwen2DecoderLayer")
        == decoder_layers(causal, path)
        == list(causal.model.layers)
    )
    # The PPM: a plain nn.Module around the base model; the layers are found inside it.
    ppm = ValueHeadModel(load_backbone(str(tiny_model_dir), head=False))
    assert decoder_layers(ppm) == list(ppm.backbone.layers)
    with pytest.raises(
        ValueError,
        match=r"matches no module of Qwen2ForCausalLM; set model.init_args.fsdp"
        r".layer_class .*Qwen2DecoderLayer",
    ):
        decoder_layers(causal, "LlamaDecoderLayer")
    with pytest.raises(
        ValueError, match=r"unknown keys \['param_dtpye'\]; allowed: layer_class, param_dtype"
    ):
        shard_model(causal, mesh=None, config={"param_dtpye": "bfloat16"})


def test_a_sharded_checkpoint_folder_is_replaced_whole(tmp_path):
    from rstar_pl.files import replace_folder

    final, new = tmp_path / "last.ckpt", tmp_path / ".last.ckpt.partial"
    final.mkdir()
    (final / "__0_0.distcp").write_text("old")
    new.mkdir()
    (new / "__0_0.distcp").write_text("new")
    (new / ".metadata").write_text("new")
    replace_folder(new, final)
    assert sorted(p.name for p in final.iterdir()) == [".metadata", "__0_0.distcp"]
    assert (final / "__0_0.distcp").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # nothing left beside it
