#!/usr/bin/env bash
# The real measurement, once gpu-check (run.sh) passes: run from the GPU bundle. Steps run most
# valuable first, and each writes its results into $OUT as soon as it ends, so a run cut off by
# the device's time limit still brings back what finished (tests/gpu/README.md, "Procedure").
#   peer          tests/gpu/peer_torch.py: one packed 64k row through PyTorch (SDPA/flash
#                 attention, bf16 autocast) and through labench's CUDA step (labench grad):
#                 loss, gradients and tokens/s side by side
#   7b-2layers    every strategy, a two-layer slice of the 7b shape, 64k-token packs, one step
#   attention     the attention kernels' TFLOP/s, forward and backward (bench_attention: cuDNN's
#                 fused kernels and labench's WMMA ones; causal segments of 1k, 4k, 16k, 64k; D 64,
#                 128), beside PyTorch's SDPA on the same shapes (sdpa_torch.py): attention.json
#   small         every strategy, the small model, 64k-token packs, one optimizer step
#   nccl          labench dp-check --backend cuda: NCCL all-reduce, all-gather and reduce-scatter
#                 on every visible GPU (one is enough), exact against the expected sums
#   report        REPORT-measure.md from the results that exist
# BUDGET_S=N (seconds, optional): the whole script's time; a step's limit is cut to what is left
# (keeping 20 s for the report and the summary), and a step with under 20 s left is skipped.
# Logs and results go to $OUT: measure.log, peer.json (labench's step with each attention beside
# the PyTorch peer), measure-7b2.json, attention.json, measure-small.json, REPORT-measure.md. Exit status: 0 all passed; 1 a step failed; 2 preflight.
SCRIPT_NAME=measure
# shellcheck source=tests/gpu/gpu_common.sh
. "$(dirname "$0")/gpu_common.sh"
preflight

common=(--backend cuda --strategy all --len-dist "$B/data/longalign-mix.hist" --steps 1 --val-samples 0 --no-progress)
if [ -n "$PYTHON" ]; then
    # Python runs without labench's library path; it calls labench through LB_WRAP, which has it
    step peer 150 gpu env PYTHONUNBUFFERED=1 "$PYTHON" "$B/peer_torch.py" --labench "$LB_WRAP" \
        --device cuda --model small --out "$OUT/peer.json" --workdir "$STEPS_TMP/peer"
else
    skip_step peer "no python3 with torch"
fi
step 7b-2layers 165 gpu "${LB[@]}" "$B/labench" "${common[@]}" --model 7b --layers 2 --out "$OUT/measure-7b2.json"
step attention 60 gpu "${LB[@]}" "$B/bench_attention" --out "$STEPS_TMP/attention-labench.json"
if [ -n "$PYTHON" ]; then
    step attention-torch 60 gpu env PYTHONUNBUFFERED=1 "$PYTHON" "$B/sdpa_torch.py" \
        --labench-json "$STEPS_TMP/attention-labench.json" --out "$OUT/attention.json"
else
    skip_step attention-torch "no python3 with torch"
fi
[ -f "$OUT/attention.json" ] || cp "$STEPS_TMP/attention-labench.json" "$OUT/attention.json" 2>/dev/null
step small 150 gpu "${LB[@]}" "$B/labench" "${common[@]}" --model small --out "$OUT/measure-small.json"
step nccl 20 gpu "${LB[@]}" "$B/labench" dp-check --backend cuda
reports=()
for f in "$OUT/measure-7b2.json" "$OUT/measure-small.json"; do [ -f "$f" ] && reports+=("$f"); done
if [ ${#reports[@]} -gt 0 ]; then
    step report 15 cpu "${LB[@]}" "$B/labench" report "${reports[@]}" -o "$OUT/REPORT-measure.md" --no-plots
else
    skip_step report "no results"
fi
finish
