"""Loading Hugging Face backbones for training: dtype, attention, vocabulary size.

Both modules start from a causal LM (a hub id or a local folder). The
datamodule's tokenizer may have more tokens than the checkpoint (the step
tokens were added), so embeddings are resized to at least `vocab_size`; a
checkpoint whose embedding matrix is already larger (Qwen2.5 pads its vocabulary
to 152064) is left as it is.

The rows of the added tokens, ids `len(checkpoint's own tokenizer)` up to
`vocab_size`, whether new or unused padding rows, start at the mean of the
rows of the checkpoint's own tokens, in the input embedding and in an untied
LM head. A random row can have a norm far from the pretrained rows' and, in the
head, a logit that swamps every real token; the mean is a point the model
already handles, its logit is the average logit (so sampling from the loaded
model barely changes), and it is deterministic. (transformers' own
`mean_resizing` samples rows from a normal around the mean, from the global RNG,
and needs the covariance of the whole matrix.)
"""

from __future__ import annotations

import torch

__all__ = ["init_added_rows", "load_backbone", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | None, key: str = "model.dtype") -> torch.dtype | None:
    """A dtype named in a config (`key` names the setting in the error), or None for null."""
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"{key} is {name!r}; allowed: {', '.join(_DTYPES)} or null")
    return _DTYPES[name]


def _own_vocab_size(name_or_path: str) -> int | None:
    """How many tokens the checkpoint's own tokenizer has; None when it ships none."""
    from transformers import AutoTokenizer

    try:
        return len(AutoTokenizer.from_pretrained(name_or_path))
    except (OSError, ValueError):
        return None


def init_added_rows(model, first: int, stop: int) -> None:
    """Set embedding rows `first:stop` to the mean of rows `:first` (see the module doc).

    Covers the input embedding and, when it is not tied to it, the output
    embedding (LM head) and its bias; a base model without head has only the first.
    """
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    matrices = [embedding]
    if head is not None and head.weight is not embedding:
        matrices.append(head.weight)
    with torch.no_grad():
        for weight in matrices:
            weight[first:stop] = weight[:first].mean(dim=0, dtype=torch.float32).to(weight.dtype)
        bias = getattr(head, "bias", None)
        if bias is not None:
            bias[first:stop] = bias[:first].mean(dtype=torch.float32).to(bias.dtype)


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
    rows = model.get_input_embeddings().num_embeddings
    if vocab_size is not None and vocab_size > rows:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    if weights and vocab_size is not None:
        first_added = min(_own_vocab_size(name_or_path) or rows, rows)
        if vocab_size > first_added:
            init_added_rows(model, first_added, vocab_size)
    # from_pretrained returns a model in eval mode; Lightning switches modes per stage itself.
    model.train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
