#!/usr/bin/env bash
# The GPU check of the generation benchmark, in one call: a random-init TinyLlama-shape model (1.1B,
# benchmarks/configs/llama-1.1b.json) in bf16; every noise type at batch 1, 8 and 64, eager and
# fast_decode, as hf-noisy / stock hf tokens/s in interleaved pairs; peak accelerator memory with and
# without weight noise; fast_decode's bf16 agreement with eager decoding. Writes
# benchmarks/results/gpu-<time>.json and prints the table.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine (no network needed)
#   DRY_RUN=1 bash benchmarks/gpu_check.sh  # same code path on CPU at toy size, fast_decode traced only
#
# Sizes (TOKENS, PAIRS, BATCHES) can be overridden from the environment to fit a time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp=$(date -u +%Y%m%d-%H%M%S)
if [ "${DRY_RUN:-0}" = 1 ]; then
  exec python -m lm_eval_noise bench --only generation --device cpu --dtype bfloat16 \
    --batch-sizes "${BATCHES:-1,2}" --tokens "${TOKENS:-2}" --pairs "${PAIRS:-1}" --compile-backend eager \
    --cases "embedding,weight (per repeat),embedding fast_decode,weight (per repeat) fast_decode" \
    --output "${OUTPUT:-/tmp/gpu-check-dry-$stamp.json}"
fi
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device (DRY_RUN=1 runs on CPU)")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python -m lm_eval_noise bench --only generation --random-init benchmarks/configs/llama-1.1b.json \
  --device cuda --dtype bfloat16 --batch-sizes "${BATCHES:-1,8,64}" --tokens "${TOKENS:-32}" \
  --pairs "${PAIRS:-5}" --output "${OUTPUT:-benchmarks/results/gpu-$stamp.json}"
