"""Why the lm-eval cross-check runs one prompt at a time: padding when pad == EOS.

    python benchmarks/lm_eval_padding.py --model DIR --data-dir DIR [--task gsm8k] [--limit 50]

lm-eval's transformers model (`lm_eval --model hf`) left-pads a batch of prompts and calls
`generate` without the attention mask. transformers infers a mask from the padding only
when the pad token differs from EOS; SmolLM2's pad is its EOS (`<|im_end|>`), so the mask
is all ones and every row but the longest attends to its padding EOS tokens. This script
measures the effect on the first `--tokens` greedy tokens of the task's step-format prompts,
computed three ways: each prompt alone (what `harness eval` does), one left-padded batch
without a mask (what lm-eval does), and the same batch with the tokenizer's mask (a check
that batching itself changes nothing). Prints how many rows differ from the prompt alone
and how many start with EOS.

Measured on SmolLM2 after SFT from the mean row, the first 50 GSM8K problems (README): 23
rows differ without the mask, none with it.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a Hugging Face model folder")
    parser.add_argument("--data-dir", required=True, help="rStar-format benchmark files")
    parser.add_argument("--task", default="gsm8k")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=4, help="greedy tokens per prompt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.tasks import get_task, load_problems
    from rstar_pl.steps import build_prompt

    torch.set_num_threads(args.threads)
    problems = load_problems(get_task(args.task), data_dir=args.data_dir)[: args.limit]
    prompts = [build_prompt(p.question) for p in problems]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    greedy = {
        "max_new_tokens": args.tokens,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
    }

    with torch.no_grad():
        alone = []
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            alone.append(model.generate(input_ids=ids, **greedy)[0, ids.shape[1] :].tolist())
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        width = batch.input_ids.shape[1]
        unmasked = model.generate(input_ids=batch.input_ids, **greedy)[:, width:].tolist()
        masked = model.generate(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, **greedy
        )[:, width:].tolist()

    eos = tokenizer.eos_token_id

    def upto_eos(ids: list[int]) -> list[int]:
        """The tokens up to and including the first EOS (a batch pads a finished row)."""
        return ids[: ids.index(eos) + 1] if eos in ids else ids

    print(
        f"{args.model}: {len(prompts)} {args.task} prompts, pad id {tokenizer.pad_token_id}, "
        f"EOS id {eos}, {args.tokens} greedy tokens"
    )
    for name, rows in (
        ("alone", alone),
        ("batch, no mask (lm-eval)", unmasked),
        ("batch with its mask", masked),
    ):
        differ = sum(a[0] != b[0] for a, b in zip(alone, rows, strict=True))
        same = sum(upto_eos(a) == upto_eos(b) for a, b in zip(alone, rows, strict=True))
        print(
            f"  {name:26s} EOS first {sum(r[0] == eos for r in rows):3d}   first token "
            f"differs from alone {differ:3d}   all {args.tokens} tokens as alone {same:3d}"
        )


if __name__ == "__main__":
    main()
