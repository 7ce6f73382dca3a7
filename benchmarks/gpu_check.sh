#!/usr/bin/env bash
# GPU check of FSDP2 training (benchmarks/gpu_check.py): a round's policy and PPM stages,
# bf16, on a random model of Qwen2.5-Math-1.5B's shape, on every visible GPU. Unattended;
# stops itself after 9.5 minutes. Prints step time, tokens/s and peak memory per stage.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]      # e.g. --steps 8 --seq 2048
#
# The log also goes to ${GPU_CHECK_LOG:-/tmp/rstar-gpu-check.log}. Exit status: 0 when both
# stages trained and exported, 1 when not, 2 when no GPU or a package is missing, 124 on timeout.
set -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout --signal=TERM --kill-after=20 570 "$PY" benchmarks/gpu_check.py "$@" 2>&1 \
    | tee "${GPU_CHECK_LOG:-/tmp/rstar-gpu-check.log}"
