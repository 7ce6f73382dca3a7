"""Run the vLLM backend on a model and dump what came back as JSON (used by tests).

vLLM starts worker processes, so the engine is built under `__main__` in its own process.
"""

import json
import sys

if __name__ == "__main__":
    model, out_path = sys.argv[1], sys.argv[2]
    from rstar_pl.backends.vllm import VLLMBackend
    from rstar_pl.steps import STOP_STRINGS, build_prompt

    backend = VLLMBackend(model, gpu_memory_utilization=0.3, max_model_len=1024, enforce_eager=True)
    prompts = [build_prompt(q) for q in ("What is 1+1?", "Solve 3x=6.", "What is 1+1?")]
    sampled = backend.generate(
        prompts, n=8, stop=STOP_STRINGS, max_tokens=48, temperature=1.0, seed=[7, 7, 8]
    )
    again = backend.generate(
        prompts, n=8, stop=STOP_STRINGS, max_tokens=48, temperature=1.0, seed=[7, 7, 8]
    )
    greedy = backend.generate(prompts[:1], n=1, max_tokens=8, temperature=0.0)
    # A batch larger than one prefill step, seeded per prompt (what lock-step search sends).
    many = [build_prompt(f"What is {a} times {a + 7}?") for a in range(64)]
    big = backend.generate(many, n=4, max_tokens=32, temperature=1.0, seed=list(range(64)))
    dump = lambda batch: [[c.__dict__ for c in row] for row in batch]  # noqa: E731
    with open(out_path, "w") as f:
        json.dump(
            {
                "sampled": dump(sampled),
                "again": dump(again),
                "greedy": dump(greedy),
                "big": dump(big),
            },
            f,
        )
