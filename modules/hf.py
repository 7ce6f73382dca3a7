"""Loading Hugging Face backbones for training: dtype, attention, vocabulary size.

Both modules start from a causal LM (a hub id or a local folder). The
datamodule's tokenizer may have more tokens than the checkpoint (the step
tokens were added), so embeddings are resized to at least `vocab_size`; a
checkpoint whose embedding matrix is already larger (Qwen2.5 pads its vocabulary
to 152064) is left as it is.

The rows of the added tokens, ids `len(checkpoint's own tokenizer)` up to
`vocab_size`, start where the checkpoint already reads their text: each added
token's row is the mean of the rows of the pieces its text splits into under the
checkpoint's own tokenizer (`<code>` -> `<`, `code`, `>`), in the input
embedding and in an untied LM head (and its bias). Rows that are no token (Qwen2.5
pads its matrix past its tokenizer) start at the mean of all the checkpoint's
rows. A random row can have a norm far from the pretrained rows' and, in the
head, a logit that swamps every real token. The mean of all rows carries no
meaning and its logit is the average logit: on SmolLM2 the step tags' mean
negative log-likelihood on 13 SFT records was 18.0 nats from such rows, and one
short SFT round (52 steps at 5e-5) left it at 10.3 while the other tokens' went
from 2.2 to 0.1, so the fine-tuned model still did not start with `<code>`; from
the pieces' mean it is 8.3 before any training (README "Measured"). Either way a new token's logit is the
mean of real tokens' logits, never above the largest, so greedy decoding of a
text without step tokens is unchanged, and the rows are deterministic.
(transformers' own `mean_resizing` samples rows from a normal around the mean,
from the global RNG, and needs the covariance of the whole matrix.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch

from rstar_pl.errors import UserError

__all__ = ["added_token_pieces", "init_added_rows", "load_backbone", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | None, key: str = "model.dtype") -> torch.dtype | None:
    """A dtype named in a config (`key` names the setting in the error), or None for null."""
    if name is None:
        return None
    if name not in _DTYPES:
        raise UserError(f"{key} is {name!r}; allowed: {', '.join(_DTYPES)} or null")
    return _DTYPES[name]


def _own_tokenizer(name_or_path: str):
    """The checkpoint's own tokenizer (no step tokens added); None when it ships none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return None


def added_token_pieces(own, first: int, stop: int) -> dict[int, list[int]]:
    """{id: ids of its text under `own`} for the added tokens among ids `first:stop`.

    The ids are those `modules.tokenizer.load_tokenizer` gives the step tokens
    (the order in which it adds them); a token whose text `own` cannot encode into
    ids below `first` is left out (its row takes the mean of all rows).
    """
    from modules.tokenizer import add_step_tokens

    tokenizer = add_step_tokens(copy.deepcopy(own))
    pieces = {}
    for token_id in range(first, min(stop, len(tokenizer))):
        text = tokenizer.convert_ids_to_tokens(token_id)
        ids = own(text, add_special_tokens=False)["input_ids"]
        if ids and all(i < first for i in ids):
            pieces[token_id] = ids
    return pieces


def init_added_rows(
    model, first: int, stop: int, pieces: Mapping[int, Sequence[int]] | None = None
) -> None:
    """Set embedding rows `first:stop` to the mean of rows `:first`, and each row named in
    `pieces` (an id -> the ids of its text) to the mean of those rows (see the module doc).

    Covers the input embedding and, when it is not tied to it, the output
    embedding (LM head) and its bias; a base model without head has only the first.
    """
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    matrices = [embedding]
    if head is not None and head.weight is not embedding:
        matrices.append(head.weight)
    bias = getattr(head, "bias", None)
    if bias is not None:
        matrices.append(bias)
    with torch.no_grad():
        for weight in matrices:
            weight[first:stop] = weight[:first].mean(dim=0, dtype=torch.float32).to(weight.dtype)
            for token_id, ids in (pieces or {}).items():
                row = weight[list(ids)].mean(dim=0, dtype=torch.float32)
                weight[token_id] = row.to(weight.dtype)


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
        own = _own_tokenizer(name_or_path)
        first_added = min(len(own) if own is not None else rows, rows)
        if vocab_size > first_added:
            pieces = added_token_pieces(own, first_added, vocab_size) if own is not None else {}
            init_added_rows(model, first_added, vocab_size, pieces)
    # from_pretrained returns a model in eval mode; Lightning switches modes per stage itself.
    model.train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
