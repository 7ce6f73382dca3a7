"""The process preference model as a plain `torch.nn.Module`: backbone plus value head.

    values = tanh(value_head(h[last real token]))        in [-1, 1], shape [batch]

where `h` is the backbone's last hidden state [batch, seq, hidden] and the
last real token is the last position whose attention mask is 1, so left and
right padding give the same values. The head computes in fp32 whatever the
backbone's dtype. Position ids are counted over real tokens
only, so a left-padded row sees the same positions as the text alone.

The same module (and the same tanh) serves training (`PPMModule`) and
inference (`rstar_pl.backends.ppm.PPMScorer`).

Saved format (`save`, read by `load` and by plain transformers code):

    <dir>/config.json, model.safetensors   the backbone (`AutoModel.from_pretrained(dir)`)
    <dir>/tokenizer*                        its tokenizer, step tokens included
    <dir>/value_head.safetensors            "weight" [1, hidden], "bias" [1]
    <dir>/value_head.json                   {"format": "rstar_pl.ppm", "version": 1,
                                             "hidden_size", "activation": "tanh",
                                             "pooling": "last_token"}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from modules.hf import load_backbone
from rstar_pl.errors import UserError

__all__ = ["HEAD_CONFIG", "HEAD_WEIGHTS", "ValueHeadModel", "last_token_index", "load_value_head"]

HEAD_WEIGHTS = "value_head.safetensors"
HEAD_CONFIG = "value_head.json"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, seq] 0/1 mask -> [batch] index of each row's last 1 (left or right padding)."""
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    return (attention_mask.long() * positions).argmax(dim=-1)


def load_value_head(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """The value head of a folder written by `ValueHeadModel.save`: (weight [1, hidden],
    bias [1]), float32. Refuses a folder without one, or with another head."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = path / HEAD_CONFIG
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{path}: not a PPM export (no {HEAD_CONFIG}); expected a folder written by "
            f"`modules.export.export_ppm` or a Lightning .ckpt of a PPMModule"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != "rstar_pl.ppm" or meta.get("activation") != "tanh":
        raise UserError(
            f"{meta_file}: unsupported value head {meta}; expected format rstar_pl.ppm, tanh"
        )
    head = load_file(str(path / HEAD_WEIGHTS))
    return head["weight"].float(), head["bias"].float()


class ValueHeadModel(nn.Module):
    """A transformer backbone with a scalar value head (Linear then tanh)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        # Every value starts at 0, in tanh's linear range; the first gradients then point
        # along the hidden-state difference of each pair instead of saturating tanh.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_backbone(cls, name_or_path: str, **kwargs) -> ValueHeadModel:
        """A new value model from any causal LM or base model (its LM head is not loaded)."""
        return cls(load_backbone(name_or_path, head=False, **kwargs))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[batch, seq] ids and mask -> [batch] values in [-1, 1] (float32)."""
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        rows = torch.arange(hidden.size(0), device=hidden.device)
        last = hidden[rows, last_token_index(attention_mask)]
        # The head runs in fp32 whatever the backbone computes in (bf16 weights,
        # autocast or FSDP mixed precision): a value is one dot product whose
        # rounding would otherwise decide close pairs.
        with torch.autocast(last.device.type, enabled=False):
            return torch.tanh(self.value_head(last.float()).squeeze(-1))

    def save(self, out_dir: str | os.PathLike, state_dict: dict | None = None) -> None:
        """Write backbone and head to `out_dir` (see the module docstring).

        `state_dict`, when given, is this module's full state dict (e.g. gathered
        from FSDP shards) and is written instead of the live parameters.
        """
        from safetensors.torch import save_file

        out = Path(out_dir)
        state = state_dict if state_dict is not None else self.state_dict()
        backbone_state = {
            k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")
        }
        self.backbone.save_pretrained(out, state_dict=backbone_state)
        head = {
            "weight": state["value_head.weight"].detach().float().cpu().contiguous(),
            "bias": state["value_head.bias"].detach().float().cpu().contiguous(),
        }
        save_file(head, str(out / HEAD_WEIGHTS))
        meta = {
            "format": "rstar_pl.ppm",
            "version": 1,
            "hidden_size": int(head["weight"].shape[1]),
            "activation": "tanh",
            "pooling": "last_token",
        }
        (out / HEAD_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        dtype: str | None = "float32",
        attn_implementation: str | None = "sdpa",
    ) -> ValueHeadModel:
        """Read a folder written by `save`."""
        weight, bias = load_value_head(path)
        model = cls(
            load_backbone(
                str(path), head=False, dtype=dtype, attn_implementation=attn_implementation
            )
        )
        with torch.no_grad():
            model.value_head.weight.copy_(weight)
            model.value_head.bias.copy_(bias)
        return model
