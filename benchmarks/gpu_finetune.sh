#!/usr/bin/env bash
# The prepared GPU check of fine-tuning (under 8 minutes on one GPU), for a machine with CUDA:
#   1. the GPU tests (device listing, encode equal to CPU, OOM back-off)
#   2. all-MiniLM-L6-v2 fine-tuned on SciFact train (MNRL, the configuration of the CPU run in
#      BENCHMARKS.md) in bf16 on cuda:0; prints steps/s and test NDCG@10 to set beside the CPU run
# Run from the repository root after `pip install -e ".[dev]"`, with SciFact at ../shared/datasets.
set -euo pipefail
export HF_HUB_OFFLINE=1
WS=$(mktemp -d)
timeout 180 python -m pytest -q -m gpu tests/test_gpu.py
timeout 60 embtui --workspace "$WS" import beir ../shared/datasets/scifact --project scifact
timeout 360 embtui --workspace "$WS" finetune --project scifact --model all-MiniLM-L6-v2 \
  --name ft-gpu --epochs 2 --lr 3e-5 --batch-size 32 --eval-steps 12 --dev-corpus 1000 \
  --drop-leaked --precision bf16 --device cuda:0 --json > "$WS/result.json"
python - "$WS" <<'PY'
import json, sys
ws = sys.argv[1]
r = json.load(open(f"{ws}/result.json"))
lin = json.load(open(r["path"] + "/lineage.json"))
print(f"bf16 cuda:0: {lin['steps']} steps in {lin['train_seconds']:.1f} s = {lin['steps'] / lin['train_seconds']:.2f} steps/s; "
      f"test ndcg@10 {r['run']['ndcg@10']:.4f} (base {r['base_run']['ndcg@10']:.4f}, p = {r['vs_base']['p_permutation']})")
PY
