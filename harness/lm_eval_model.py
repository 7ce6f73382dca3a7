"""`rstar-search`: an lm-eval model whose answers come from our test-time search.

    lm_eval.simple_evaluate(model="rstar-search",
                            model_args="pretrained=DIR,ppm=DIR,search=mcts,trajectories=8",
                            tasks=["rstar_math500"], task_manager=TaskManager(include_path=...))
    harness lm-eval --model rstar-search --model_args pretrained=DIR,ppm=DIR,search=mcts \\
                    --tasks rstar_math500 --metadata '{"data_dir": "DIR"}'

Importing this module registers the model with
`lm_eval.api.registry.register_model("rstar-search")`; the distribution also
declares it as an `lm_eval.models` entry point (`pyproject.toml`) for lm-eval
versions that discover plugins that way (0.4.x does not: `harness lm-eval`
imports this module, then runs lm-eval's own command line).

`generate_until(requests)` searches **all requests at once**: one
`harness.search_eval.solve_with_search` call over the whole list, so every
depth level is one backend call for every problem (MCTS: one per level per
attempt), with code run in the sandbox and the PPM ranking and voting. Each
request gets the response of the trajectory that won the vote, which ends in
its `<answer>` step with the voted `\\boxed{}` answer, so the task's own metric
grades it (our `rstar_*` tasks with `rstar_pl.grading`; lm-eval's tasks with
theirs). A context that is our step-format prompt (`build_prompt`, what the
`rstar_*` tasks send) is searched for its question; any other context is used
whole as the question. `until` and `max_gen_toks` of a task are not used: steps
stop on our step tokens and are limited by `max_tokens` per step.

Model arguments are `harness.evaluate.EvalConfig` fields (`pretrained` is its
`checkpoint`): `ppm`, `search` (best_of_n, mcts, beam; default best_of_n),
`trajectories`, `samples`, `rollouts`, `temperature`, `top_k`, `weighted_vote`,
`max_tokens`, `max_depth`, `backend`, `device`, `dtype`, ..., plus
`stats_file` (default `rstar_search_stats.jsonl`): one JSON line per request,
keyed by `task` and `doc_id`, with the voted answer, every candidate's answer
and score, generated tokens and the search trees' size.

`loglikelihood` and `loglikelihood_rolling` raise: a search has no
log-likelihood of a given continuation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401 (see below)
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.evaluate import EvalConfig, EvalConfigError, make_backend, make_scorer
from rstar_pl.files import append_jsonl
from rstar_pl.steps import ASSISTANT, PROMPT_TEMPLATE, USER

__all__ = ["MODEL_NAME", "RStarSearchLM", "question_of"]

MODEL_NAME = "rstar-search"
DEFAULT_STATS_FILE = "rstar_search_stats.jsonl"

_HEAD, _TAIL = PROMPT_TEMPLATE.split("{question}")


def question_of(context: str) -> str:
    """The question inside our step-format prompt, or the whole context when it is not one."""
    if context.startswith(_HEAD) and context.endswith(_TAIL):
        question = context[len(_HEAD) : len(context) - len(_TAIL)]
        if question.strip() and USER not in question and ASSISTANT not in question:
            return question
    return context


def _config(pretrained: str, options: dict[str, Any]) -> EvalConfig:
    allowed = {f.name for f in dataclasses.fields(EvalConfig)} - {
        "checkpoint",
        "tasks",
        "out",
        "extra",
        "overwrite",
    }
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise EvalConfigError(
            f"rstar-search: unknown model argument(s) {', '.join(unknown)}; "
            f"allowed: pretrained, stats_file, {', '.join(sorted(allowed))}"
        )
    options.setdefault("search", "best_of_n")
    if options["search"] == "greedy":
        raise EvalConfigError(
            "rstar-search: search=greedy is not a search; use --model hf, or "
            "search=best_of_n|mcts|beam"
        )
    return EvalConfig(checkpoint=pretrained, tasks=[], progress=False, **options)


# lm-eval fills its registry with its own models (lazily, by name) only when it finds the
# registry empty; registering ours first would hide them (`--model hf` unknown in the same
# process), so `lm_eval.models` is imported above, before this registration.
@register_model(MODEL_NAME)
class RStarSearchLM(LM):
    """Test-time search (best-of-N, beam, MCTS) with a PPM vote, as an lm-eval model.

    Args:
        pretrained: the policy (HF folder or .ckpt), as for `harness eval --checkpoint`.
        stats_file: where the per-request search statistics go (JSONL, appended).
        batch_size, max_batch_size: lm-eval's own settings; `batch_size` (an int) sets
            the backend's and scorer's batch, "auto" keeps the default.
        **settings: `EvalConfig` fields (see the module docstring).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        stats_file: str = DEFAULT_STATS_FILE,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        if not pretrained:
            raise EvalConfigError("rstar-search: give the policy as model_args pretrained=DIR")
        if isinstance(batch_size, int) or (isinstance(batch_size, str) and batch_size.isdigit()):
            settings["batch_size"] = int(batch_size)
        self.config = _config(pretrained, dict(settings))
        self.stats_file = Path(stats_file)
        self._backend: Any | None = None
        self._scorer: Any | None = None
        self._sandbox: Any | None = None
        self._own_sandbox = False

    @classmethod
    def from_components(
        cls,
        backend: Any,
        *,
        scorer: Any | None = None,
        sandbox: Any | None = None,
        stats_file: str = DEFAULT_STATS_FILE,
        **settings: Any,
    ) -> RStarSearchLM:
        """The model around a policy backend, scorer and sandbox already built (a vLLM
        engine shared with other work, a scripted policy in tests)."""
        model = cls(
            pretrained=settings.pop("pretrained", "(given backend)"),
            stats_file=stats_file,
            **settings,
        )
        model._backend, model._scorer, model._sandbox = backend, scorer, sandbox
        return model

    def _components(self) -> tuple[Any, Any, Any]:
        """Backend, scorer and sandbox, loaded on first use (so that building the model for
        lm-eval's argument checks loads nothing)."""
        if self._backend is None:
            from harness.checkpoint import resolve_checkpoint

            folder = resolve_checkpoint(
                self.config.checkpoint, export_dir=self.stats_file.parent / "exported_policy"
            )
            self._backend = make_backend(self.config, folder)
        if self._scorer is None and self.config.ppm is not None:
            self._scorer = make_scorer(self.config)
        if self._sandbox is None:
            from rstar_pl.sandbox import Sandbox

            self._sandbox = Sandbox(timeout=self.config.code_timeout)
            self._own_sandbox = True
        return self._backend, self._scorer, self._sandbox

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """One search over every request (module docstring); the winning response per request."""
        from harness.search_eval import solve_with_search

        if not requests:
            return []
        backend, scorer, sandbox = self._components()
        questions = [question_of(request.args[0]) for request in requests]
        outcomes = solve_with_search(
            questions, backend=backend, sandbox=sandbox, scorer=scorer, settings=self.config
        )
        rows = [
            {
                "task": getattr(request, "task_name", None),
                "doc_id": getattr(request, "doc_id", None),
                "search": self.config.search,
                "answer": outcome.answer,
                "candidates": outcome.candidates,
                "num_tokens": outcome.num_tokens,
                **outcome.stats,
            }
            for request, outcome in zip(requests, outcomes)
        ]
        self.stats_file.parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.stats_file, rows)
        return [outcome.response for outcome in outcomes]

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list:
        raise NotImplementedError(
            "rstar-search answers by test-time search and has no log-likelihoods; run it on "
            "generate_until tasks (rstar_math500, gsm8k, ...), and multiple-choice or "
            "perplexity tasks with --model hf"
        )

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list:
        raise NotImplementedError(
            "rstar-search answers by test-time search and has no log-likelihoods; perplexity "
            "tasks need --model hf"
        )

    def close(self) -> None:
        """Stop the sandbox this model started (a given one belongs to its giver)."""
        if self._own_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox, self._own_sandbox = None, False
