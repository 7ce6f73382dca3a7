"""MCTS end to end on vLLM: the tiny policy and a tiny PPM, both served by vLLM (used by tests).

    python tests/scripts/vllm_search.py POLICY PPM WORK {first|rerun|once}

Builds the policy backend and the PPM scorer from a generate config exactly as
`rstar-pl generate` does (`backend.kind: rstar_pl.backends.vllm:VLLMBackend`,
`scorer.kind: rstar_pl.backends.vllm:VLLMScorer`, two engines in one process,
each with its own memory budget), then:

- first: scores `WORK/texts.json` with the PPM (its engine starts first),
  runs `generate` into `WORK/first`, then the same config again in the same
  engines into `WORK/again`, reading each engine's prompt-token counts around
  each run, then with one tree per batch into `WORK/alone`, and reads vLLM's
  Prometheus counters (the policy's: its engine started last) at the end;
- rerun: runs `generate` into `WORK/rerun` with fresh engines (a new process);
- once: scores `WORK/texts.json` and runs `generate` into `WORK/once` on a
  smaller workload (2 problems, 2 rollouts, depth 4) with round 1's few-shot
  prompt, for a real model.

Writes `WORK/<mode>.json`. vLLM starts worker processes, hence `__main__`.
"""

import json
import multiprocessing
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def config_args(policy: str, ppm: str, out: Path, small: bool = False) -> list[str]:
    engine = {
        "max_model_len": 1024,
        "enforce_eager": True,
        "block_size": 32,
        "kv_cache_memory_bytes": 2**28,
        "gpu_memory_utilization": 0.05,
    }
    backend = {"model": policy, **engine}
    # float32 like the transformers scorer it is compared with ("auto" is bfloat16 on CPU)
    scorer = {"path": ppm, "max_length": 64, **engine, "max_model_len": 64, "dtype": "float32"}
    size = [
        "--problems.limit",
        "3",
        "--schedule",
        "[6]",
        "--search.n",
        "6",
        "--search.sampling.max_tokens",
        "40",
    ]
    if small:  # a real model: round 1's few-shot prompt and stops, so that it writes steps
        backend["max_model_len"] = 2048  # the prompt alone is about 600 tokens
        size = [
            "--problems.limit",
            "2",
            "--schedule",
            "[2]",
            "--search.n",
            "4",
            "--search.max_depth",
            "4",
            "--search.few_shot",
            "true",
            "--search.sampling",
            json.dumps(
                {
                    "temperature": 0.7,
                    "top_p": 0.95,
                    "max_tokens": 64,
                    "stop": [
                        "<end_of_step>",
                        "<end_of_code>",
                        "<end_of_answer>",
                        "<end_of_output>",
                    ],
                }
            ),
        ]
    return [
        "--config",
        str(ROOT / "configs/search/scripted.yaml"),
        "--out_dir",
        str(out),
        *size,
        "--search.annotation",
        "ppm",
        "--sandbox",
        '{"timeout": 120}',
        "--backend.kind",
        "rstar_pl.backends.vllm:VLLMBackend",
        "--backend.args",
        json.dumps(backend),
        "--scorer.kind",
        "rstar_pl.backends.vllm:VLLMScorer",
        "--scorer.args",
        json.dumps(scorer),
    ]


def main() -> None:
    policy, ppm, work, mode = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    from rstar_pl.data.problems import load_problems
    from rstar_pl.generate import build_backend, build_scorer, generate, parse_config
    from rstar_pl.sandbox import Sandbox
    from rstar_pl.search.expand import SearchEnv

    config, dumped = parse_config(config_args(policy, ppm, work / mode, small=mode == "once"))
    problems = load_problems(config.problems).problems
    backend = build_backend(config.backend, problems)
    scorer = build_scorer(config.scorer, problems)
    result: dict = {}
    if mode in ("first", "once"):
        texts = json.loads((work / "texts.json").read_text())
        result["ppm_values"] = scorer.score(texts)
    with Sandbox(**config.sandbox) as sandbox:
        env = SearchEnv(backend=backend, sandbox=sandbox, scorer=scorer)
        result["cache_before"] = backend.cache_stats()
        result["counts"] = generate(config, env=env, dumped=dumped)
        result["cache_after"] = backend.cache_stats()
        if mode == "first":
            again, dumped_again = parse_config(config_args(policy, ppm, work / "again"))
            result["counts_again"] = generate(again, env=env, dumped=dumped_again)
            result["cache_again"] = backend.cache_stats()
            # one tree per batch: every prompt at other batch positions than above
            alone, dumped_alone = parse_config(
                [*config_args(policy, ppm, work / "alone"), "--batch_size", "1"]
            )
            generate(alone, env=env, dumped=dumped_alone)
            result["ppm_cache"] = scorer.cache_stats()
            # the policy engine was started last here: the process's Prometheus
            # counters are its own, to check cache_stats against
            from rstar_pl.backends.vllm import prometheus_cache_stats

            result["prometheus"] = prometheus_cache_stats(backend.llm)
            result["cache_end"] = backend.cache_stats()
    (work / f"{mode}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
    # vLLM's CPU engine can hang in interpreter shutdown: stop its processes, then leave.
    for child in multiprocessing.active_children():
        child.kill()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
