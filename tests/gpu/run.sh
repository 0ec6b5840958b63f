#!/usr/bin/env bash
# gpu-check: the GPU verification, run from the GPU bundle (make gpu-bundle; copy the folder to
# the GPU machine and run its run.sh). About 5 minutes on an H100/H200; step limits sum to 480 s,
# 490 s with the preflight, under the 600 s a device command may run. Execute bits are restored
# (gpu_common.sh) before the preflight, so `bash run.sh` works on a copy that lost them.
#   preflight     (<= 10 s) driver, GPU, CUDA libraries, every binary loads; else exit 2
#   cpu-reference test_cpu_ops, test_model: the CPU reference on this machine's CPU and OpenBLAS
#   gpu-ops       every CUDA op against the CPU reference (f32, bf16, bf16 scalar attention)
#   gpu-step      whole training steps against the CPU reference
#   memcheck-step compute-sanitizer memcheck on one tiny training step
#   memcheck-attn, racecheck, synccheck   the same three tools on the tensor-core (WMMA)
#                 attention, bf16, D = 64 and 128, small segments (test_gpu_ops --sanitize)
#   benchmark     three strategies, one step, packs of 16k tokens, no validation; then its report
# Logs and results go to $OUT (default ./out next to this script): gpu-check.log, results.json,
# REPORT.md. Exit status: 0 all passed; 1 a step failed (the summary says which); 2 preflight.
SCRIPT_NAME=gpu-check
# shellcheck source=tests/gpu/gpu_common.sh
. "$(dirname "$0")/gpu_common.sh"
preflight

# REF: labench's library path and the pinned OpenBLAS core (gpu_common.sh); LB: the path alone
step cpu-reference 30 cpu "${REF[@]}" sh -c '"$0"/test_cpu_ops && "$0"/test_model' "$B"
step gpu-ops 100 gpu "${REF[@]}" "$B/test_gpu_ops"
step gpu-step 100 gpu "${REF[@]}" "$B/test_gpu_step"
if [ -n "$SANITIZER" ]; then
    san=("${LB[@]}" "$SANITIZER" --error-exitcode 3 --print-limit 20)
    # memcheck: a failed CUDA API call that the code expects and handles (a probe, an allocation
    # that may not fit) is not a kernel error; --report-api-errors no keeps memcheck to the
    # kernels' memory accesses, which stay strict (--error-exitcode). Start-up and instrumenting
    # cuBLAS's modules take most of the step's time: 70 s, taken from the benchmark's 90.
    mc=(--tool memcheck --report-api-errors no)
    step memcheck-step 70 gpu "${san[@]}" "${mc[@]}" "$B/labench" --backend cuda --model tiny \
        --strategy packing-lw --len-dist "$B/data/longalign-mix.hist" --steps 1 --samples 400 --len-scale 1/32 \
        --val-samples 0 --profile off --no-progress --out "$STEPS_TMP/memcheck-results.json"
    step memcheck-attn 30 gpu "${san[@]}" "${mc[@]}" "$B/test_gpu_ops" --sanitize
    step racecheck 40 gpu "${san[@]}" --tool racecheck "$B/test_gpu_ops" --sanitize
    step synccheck 30 gpu "${san[@]}" --tool synccheck "$B/test_gpu_ops" --sanitize
else
    for s in memcheck-step memcheck-attn racecheck synccheck; do skip_step $s "compute-sanitizer not found"; done
fi
step benchmark 60 gpu "${LB[@]}" "$B/labench" --backend cuda --model small --strategy sorted,packing,packing-lw \
    --len-dist "$B/data/longalign-mix.hist" --steps 1 --max-tokens 16384 --val-samples 0 --no-progress \
    --out "$OUT/results.json"
if [ -f "$OUT/results.json" ]; then
    step report 20 cpu "${LB[@]}" "$B/labench" report "$OUT/results.json" -o "$OUT/REPORT.md" --no-plots
else
    skip_step report "no results.json"
fi
finish
