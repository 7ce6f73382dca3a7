"""Does the demo's PPM learn to rank held-out step pairs? Training recipes side by side.

    python benchmarks/ppm_recipes.py --init runs/demo/round2/policy \
        --train runs/demo/round2/pairs.jsonl --heldout runs/demo/round2/heldout/pairs.jsonl \
        [--steps 400] [--lr 1e-3] [--head-lr X] [--pool last|mean|tail24] [--eval-every 100]
    python benchmarks/ppm_recipes.py ... --synthetic-from runs/demo/round1/sft.jsonl \
        runs/demo/round2/sft.jsonl [--synthetic-holdout 0.1]

A diagnostic, not the product's trainer: a plain PyTorch loop over the product's value model
(`modules.value_model.ValueHeadModel`, started from `--init` like `PPMModule`), its tokeniser
cut (`encode_values`, 256 tokens) and its loss (`modules.losses.pairwise_preference_loss`),
AdamW with linear warm-up and decay, gradient clipping at 1, one thread. Where it differs from
`fit --stage ppm`: every pair weighs 1 (the product weighs a step's pairs by Eq. 4, so that
each step counts once), its warm-up and decay are its own two lines (`modules.optim.lr_factor`
starts the decay after the warm-up), and the held-out pairs are scored by the loop itself
(eval mode, 64 pairs a batch, chosen and rejected padded together) rather than through
`PPMScorer`; the README's numbers were measured with exactly this loop. Every
`--eval-every` steps it prints the training loss (mean of the last 50 steps) and the share of
held-out pairs whose chosen text scores strictly above the rejected one (ties count as
wrong), so many recipes can be compared in minutes without a Lightning run each.

Variants it can run:

- `--head-lr`: a learning rate for the value head other than the backbone's (head warm-up);
- `--pool mean` / `--pool tailN`: the head reads the mean of all real tokens / of the last N
  positions instead of the last token (the paper's read-out), to test whether the last token
  is what limits it;
- `--synthetic-from SFT...`: pairs made from the correct trajectories of SFT files, the
  rejected step a copy of a correct step with one careless-solver flaw (a number miscopied
  one digit off, in the comment and the code or in the code only; the story's first number
  miscopied; another operator; a boxed answer that differs from the printed output). With
  `--synthetic-holdout F` a share F of the problems is held out and scored too
  (in-distribution accuracy, next to the real held-out pairs).

Measured results are in the README (demo section); `--init runs/demo/base` starts from the
untrained base model instead of the policy.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time

from rstar_pl.steps import build_prompt

STEP = re.compile(r"(# Step \d+: [^\d\n]*)(\d+)([^\n]*)\n(count = )(\w+)( \S+ )(\d+)")
OPERATORS = (" + ", " - ", " * ", " // ")


def _miscopy(rng: random.Random, n: str, avoid: set[str]) -> str | None:
    """`n` with one digit changed (sometimes a digit dropped or added), not in `avoid`."""
    for _ in range(50):
        digits = list(n)
        digits[rng.randrange(len(digits))] = rng.choice("0123456789")
        if rng.random() < 0.2:
            digits = digits[:1] if len(digits) > 1 else digits + [rng.choice("0123456789")]
        out = "".join(digits).lstrip("0") or "1"
        if out != n and out not in avoid:
            return out
    return None


def synthetic_pairs(sft_files: list[str], seed: int = 0) -> list[dict]:
    """Step pairs from SFT records: each code step against two flawed copies, and each answer
    step against a boxed answer that differs from the output (module docstring)."""
    rng = random.Random(seed)
    out = []
    for path in sft_files:
        with open(path) as f:
            records = [json.loads(line) for line in f]
        for record in records:
            question, response = record["question"], record["response"]
            in_question = set(re.findall(r"\d+", question))
            pieces = response.split("<end_of_step>")
            steps, tail = [p + "<end_of_step>" for p in pieces[:-1]], pieces[-1]
            prefix = build_prompt(question)

            def pair(prompt: str, chosen: str, rejected: str, problem: str = record["problem_id"]):
                out.append(
                    {
                        "problem_id": problem,
                        "prompt": prompt,
                        "chosen": chosen,
                        "rejected": rejected,
                        "chosen_q": 1.0,
                        "rejected_q": -1.0,
                        "kind": "step",
                    }
                )

            for k, step in enumerate(steps):
                match = STEP.search(step)
                if not match:
                    continue
                number = match.group(2)
                kinds = ["code", "both", "operator"] + (
                    ["start"] if match.group(5).isdigit() else []
                )
                for kind in rng.sample(kinds, 2):
                    g = list(match.groups())
                    if kind == "code":
                        g[6] = _miscopy(rng, number, {number})
                    elif kind == "both":
                        g[1] = g[6] = _miscopy(rng, number, in_question)
                    elif kind == "start":
                        g[4] = _miscopy(rng, g[4], in_question)
                    else:
                        g[5] = rng.choice([o for o in OPERATORS if o != g[5]])
                    if None in g:
                        continue
                    flawed = "".join(g[:3]) + "\n" + "".join(g[3:])
                    rejected = step[: match.start()] + flawed + step[match.end() :]
                    if rejected != step:
                        pair(prefix + "".join(steps[:k]), step, rejected)
            answer = tail.find("<answer>")
            output = re.search(r"<output>(-?\d+)<end_of_output>", tail)
            if answer >= 0 and output:
                value = output.group(1)
                wrong = _miscopy(rng, value, {value})
                if wrong is not None:
                    chosen = tail[answer:]
                    rejected = chosen.replace(f"{{{value}}}", f"{{{wrong}}}")
                    pair(prefix + "".join(steps) + tail[:answer], chosen, rejected)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="policy (or base model) folder")
    parser.add_argument("--train", nargs="*", default=[], help="pair files to train on")
    parser.add_argument("--heldout", nargs="+", required=True, help="pair files to score")
    parser.add_argument("--synthetic-from", nargs="*", default=[], help="SFT files")
    parser.add_argument("--synthetic-holdout", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pool", default="last", help="last, mean or tailN")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from modules.losses import pairwise_preference_loss
    from modules.tokenizer import encode_values, load_tokenizer, pad_values
    from modules.value_model import ValueHeadModel
    from rstar_pl.data.records import read_pairs

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer(args.init)
    model = ValueHeadModel.from_backbone(args.init, vocab_size=len(tokenizer), dtype="float32")

    def as_tuples(rows) -> list[tuple[str, str, str, str]]:
        return [(r.prompt, r.chosen, r.rejected, r.group) for r in rows]

    train = [t for path in args.train for t in as_tuples(read_pairs(path))]
    heldout = {"heldout": [t for path in args.heldout for t in as_tuples(read_pairs(path))]}
    synthetic = [
        (r["prompt"], r["chosen"], r["rejected"], r["problem_id"])
        for r in synthetic_pairs(args.synthetic_from, args.seed)
    ]
    if synthetic and args.synthetic_holdout > 0:
        problems = sorted({t[3] for t in synthetic})
        held = set(rng.sample(problems, max(1, int(len(problems) * args.synthetic_holdout))))
        heldout["synthetic_heldout"] = [t for t in synthetic if t[3] in held]
        synthetic = [t for t in synthetic if t[3] not in held]
    train += synthetic
    if not train:
        parser.error("nothing to train on: give --train or --synthetic-from")

    def encode(rows):
        chosen = encode_values(tokenizer, [p + c for p, c, _, _ in rows], args.max_length)
        rejected = encode_values(tokenizer, [p + r for p, _, r, _ in rows], args.max_length)
        return list(zip(chosen, rejected))

    train_ids = encode(train)
    heldout_ids = {name: encode(rows) for name, rows in heldout.items()}

    def values(ids: list[list[int]]) -> torch.Tensor:
        batch = pad_values(ids, tokenizer.pad_token_id, "left")
        if args.pool == "last":
            return model(batch["input_ids"], batch["attention_mask"])
        mask = batch["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = model.backbone(
            input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions
        ).last_hidden_state
        weights = mask.float()
        if args.pool.startswith("tail"):  # left padding: the last N positions are real
            weights[:, : mask.size(1) - int(args.pool[4:])] = 0
        pooled = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        return torch.tanh(model.value_head(pooled).squeeze(-1))

    def accuracy(pairs) -> float:
        model.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(pairs), 64):
                chunk = pairs[i : i + 64]
                v = values([c for c, _ in chunk] + [r for _, r in chunk])
                right += int((v[: len(chunk)] > v[len(chunk) :]).sum())
        model.train()
        return right / len(pairs)

    head = list(model.value_head.parameters())
    backbone = [p for n, p in model.named_parameters() if not n.startswith("value_head")]
    optimizer = torch.optim.AdamW(
        [{"params": backbone, "lr": args.lr}, {"params": head, "lr": args.head_lr or args.lr}],
        weight_decay=0.0,
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    order: list[int] = []
    losses: list[float] = []
    start = time.perf_counter()
    sizes = {name: len(p) for name, p in heldout_ids.items()}
    print(json.dumps({"train_pairs": len(train_ids), "heldout_pairs": sizes, **vars(args)}))
    for step in range(1, args.steps + 1):
        if not order:
            order = list(range(len(train_ids)))
            rng.shuffle(order)
        rows = [train_ids[order.pop()] for _ in range(min(args.batch_size, len(order)))]
        scale = min(1.0, step / max(1, args.warmup)) * (1 - (step - 1) / args.steps)
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * scale
        v = values([c for c, _ in rows] + [r for _, r in rows])
        loss, _ = pairwise_preference_loss(v[: len(rows)], v[len(rows) :], None)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            report = {name: round(accuracy(p), 3) for name, p in heldout_ids.items()}
            recent = losses[-50:]
            print(
                json.dumps(
                    {
                        "step": step,
                        "train_loss": round(sum(recent) / len(recent), 3),
                        **report,
                        "seconds": round(time.perf_counter() - start),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
