"""Evaluation harness: benchmark tasks, `harness eval`, metrics, reports, lm-eval glue.

- `harness.tasks`: the nine benchmarks, loaded from local rStar-format files or the hub;
- `harness.evaluate`: `EvalConfig` and `evaluate` (greedy or test-time search, resumable);
- `harness.search_eval`: MCTS / beam / best-of-N at test time and the majority vote;
- `harness.metrics`: `AnswerAccuracy`, a torchmetrics metric;
- `harness.report`: the result files (predictions: `rstar_pl.data.predictions`), the resume
  check and the printed table;
- `harness.checkpoint`: HF folders and Lightning `.ckpt` policies;
- `harness.cli`: the `harness` command;
- `harness.lm_eval_utils` and `harness/tasks/rstar_*.yaml`: lm-eval tasks.

Submodules are imported on demand; importing this package loads nothing heavy.
"""
