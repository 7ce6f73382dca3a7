"""Loading Hugging Face backbones for training: dtype, attention, vocabulary size.

Both modules start from a causal LM (a hub id or a local folder). The
datamodule's tokenizer may have more tokens than the checkpoint (the step
tokens were added), so embeddings are resized to at least `vocab_size`; a
checkpoint whose embedding matrix is already larger (Qwen2.5 pads its vocabulary
to 152064) is left as it is.
"""

from __future__ import annotations

import torch

__all__ = ["load_backbone", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | None, key: str = "model.dtype") -> torch.dtype | None:
    """A dtype named in a config (`key` names the setting in the error), or None for null."""
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"{key} is {name!r}; allowed: {', '.join(_DTYPES)} or null")
    return _DTYPES[name]


def load_backbone(
    name_or_path: str,
    *,
    head: bool,
    vocab_size: int | None = None,
    dtype: str | None = "float32",
    attn_implementation: str | None = "sdpa",
    gradient_checkpointing: bool = False,
    weights: bool = True,
):
    """A causal LM (`head=True`) or its base model without LM head (`head=False`).

    `weights=False` builds the architecture from the config alone (used when a
    Lightning checkpoint supplies the weights).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if head else AutoModel
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if weights:
        model = cls.from_pretrained(name_or_path, dtype=resolve_dtype(dtype) or "auto", **kwargs)
    else:
        config = AutoConfig.from_pretrained(name_or_path)
        model = cls.from_config(config, dtype=resolve_dtype(dtype), **kwargs)
    if vocab_size is not None and vocab_size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(vocab_size)
    # from_pretrained returns a model in eval mode; Lightning switches modes per stage itself.
    model.train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
