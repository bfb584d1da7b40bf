#!/usr/bin/env bash
# The one prepared GPU check (under 8 minutes on one GPU), for a machine with CUDA:
#   1. the GPU test file (device listing, encode equal to CPU, a real OOM backed off and remembered)
#      and every GPU at once (--device gpus: one worker per device)
#   2. profiles of all-MiniLM-L6-v2 and all-mpnet-base-v2 on cuda:0 at fp32 / fp16 / bf16
# Run from the repository root after `pip install -e ".[dev]"`; the mpnet profile needs
# `python benchmarks/fetch_models.py` first (it is skipped otherwise). Figures go to BENCHMARKS.md.
set -euo pipefail
export HF_HUB_OFFLINE=1
timeout 240 python -m pytest -q -m gpu tests/test_gpu.py
timeout 240 python benchmarks/bench_gpu_profiles.py cuda:0
