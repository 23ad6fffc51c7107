#!/usr/bin/env bash
# The GPU check of the generation benchmark, in one call: a random-init TinyLlama-shape model (1.1B,
# benchmarks/configs/llama-1.1b.json) in bf16; embedding, hidden, lm_head and activation noise at batch
# 1, 8 and 64 eager and with fast_decode at batch 1 (embedding at every batch size), weight noise with
# per-repeat draws at 8 and 64 (its target's batch sizes; with fast_decode at 8) and per-sample draws
# at 1, as hf-noisy / stock hf tokens/s in interleaved pairs; peak accelerator memory with and without
# weight noise; fast_decode's bf16 agreement with eager decoding. Writes benchmarks/results/gpu-<time>.json
# and prints the table.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine (no network needed)
#   DRY_RUN=1 bash benchmarks/gpu_check.sh  # same code path on CPU at toy size, fast_decode traced only
#
# Sizes (TOKENS, PAIRS, REPEAT_DOCS, BUDGET) can be overridden from the environment; BATCHES and CASES
# go together (a case's @ list names batch sizes of BATCHES). The cases run in the order of CASES, batch
# size by batch size: the stock-vs-stock spread, the eager rows, the fast_decode rows at batch 1 (the
# 5x target), then fast_decode at the larger batches; per-sample weight draws at batch 1 only (above it
# a call is that many batch-1 generations). No case starts after BUDGET seconds (the rest are named in
# the note), and the JSON is rewritten after every case, so a run cut short keeps what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp=$(date -u +%Y%m%d-%H%M%S)
plan="hf vs hf,embedding,hidden,lm_head,activation,weight (per repeat)@8+64,weight (per sample)@1"
plan="$plan,embedding fast_decode,hidden fast_decode@1,lm_head fast_decode@1,activation fast_decode@1"
plan="$plan,weight (per repeat) fast_decode@8"
common=(--only generation --dtype bfloat16 --batch-sizes "${BATCHES:-1,8,64}" --cases "${CASES:-$plan}"
        --repeat-docs "${REPEAT_DOCS:-16}")
if [ "${DRY_RUN:-0}" = 1 ]; then  # the tiny model, 2 tokens, one pair, fast_decode traced without codegen
  exec python -m lm_eval_noise bench "${common[@]}" --device cpu --tokens "${TOKENS:-2}" --pairs "${PAIRS:-1}" \
    --compile-backend eager ${BUDGET:+--budget "$BUDGET"} --output "${OUTPUT:-/tmp/gpu-check-dry-$stamp.json}"
fi
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device (DRY_RUN=1 runs on CPU)")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python -m lm_eval_noise bench "${common[@]}" --random-init benchmarks/configs/llama-1.1b.json --device cuda \
  --tokens "${TOKENS:-32}" --pairs "${PAIRS:-5}" --budget "${BUDGET:-300}" \
  --output "${OUTPUT:-benchmarks/results/gpu-$stamp.json}"
