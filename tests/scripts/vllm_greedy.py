"""Greedy vLLM generation on given prompts, with and without stop strings, dumped as JSON.

    python tests/scripts/vllm_greedy.py MODEL SPEC.json OUT.json

SPEC holds "prompts", "stop" and "max_tokens". OUT gets "free" and "stopped" (one
completion per prompt) and "prompt_ids" (the token ids the engine saw). vLLM starts
worker processes, so the engine is built under `__main__` in its own process.
"""

import json
import multiprocessing
import os
import sys

if __name__ == "__main__":
    model, spec_path, out_path = sys.argv[1:4]
    from vllm import SamplingParams

    from rstar_pl.backends.vllm import VLLMBackend

    spec = json.loads(open(spec_path).read())
    backend = VLLMBackend(
        model, gpu_memory_utilization=0.3, max_model_len=1024, dtype="float32", enforce_eager=True
    )
    prompts = spec["prompts"]
    free = backend.generate(prompts, max_tokens=spec["max_tokens"], temperature=0.0)
    stopped = backend.generate(
        prompts, stop=spec["stop"], max_tokens=spec["max_tokens"], temperature=0.0
    )
    seen = backend.llm.generate(prompts, SamplingParams(max_tokens=1), use_tqdm=False)
    with open(out_path, "w") as f:
        json.dump(
            {
                "free": [row[0].__dict__ for row in free],
                "stopped": [row[0].__dict__ for row in stopped],
                "prompt_ids": [list(o.prompt_token_ids) for o in seen],
            },
            f,
        )
    # vLLM's CPU engine can hang in interpreter shutdown: stop its processes, then leave.
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(0)
