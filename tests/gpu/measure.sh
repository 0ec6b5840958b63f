#!/usr/bin/env bash
# The real measurement, once gpu-check (run.sh) passes: run from the GPU bundle. At most 8 minutes
# on an H100/H200 (step limits sum to 480 s with the preflight).
#   small         every strategy, the small model, 64k-token packs, one optimizer step
#   peer          tests/gpu/peer_torch.py: one packed 64k row through PyTorch (SDPA/flash
#                 attention, bf16 autocast) and through labench's CUDA step (labench grad):
#                 loss, gradients and tokens/s side by side
#   7b-2layers    every strategy, a two-layer slice of the 7b shape, 64k-token packs, one step
#   nccl          labench dp-check --backend cuda: NCCL all-reduce, all-gather and reduce-scatter
#                 on every visible GPU (one is enough), exact against the expected sums
#   report        REPORT-measure.md from both results
# Logs and results go to $OUT: measure.log, measure-small.json, measure-7b2.json, peer.json,
# REPORT-measure.md. Exit status: 0 all passed; 1 a step failed; 2 preflight.
SCRIPT_NAME=measure
# shellcheck source=tests/gpu/gpu_common.sh
. "$(dirname "$0")/gpu_common.sh"
preflight

common=(--backend cuda --strategy all --len-dist "$B/data/longalign-mix.hist" --steps 1 --val-samples 0 --no-progress)
step small 150 gpu "$B/labench" "${common[@]}" --model small --out "$OUT/measure-small.json"
if [ -n "$PYTHON" ]; then
    step peer 120 gpu env PYTHONUNBUFFERED=1 "$PYTHON" "$B/peer_torch.py" --labench "$B/labench" \
        --device cuda --model small --out "$OUT/peer.json" --workdir "$STEPS_TMP/peer"
else
    skip_step peer "no python3 with torch"
fi
step 7b-2layers 165 gpu "$B/labench" "${common[@]}" --model 7b --layers 2 --out "$OUT/measure-7b2.json"
step nccl 20 gpu "$B/labench" dp-check --backend cuda
reports=()
for f in "$OUT/measure-small.json" "$OUT/measure-7b2.json"; do [ -f "$f" ] && reports+=("$f"); done
if [ ${#reports[@]} -gt 0 ]; then
    step report 15 cpu "$B/labench" report "${reports[@]}" -o "$OUT/REPORT-measure.md" --no-plots
else
    skip_step report "no results"
fi
finish
