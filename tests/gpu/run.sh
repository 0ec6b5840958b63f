#!/usr/bin/env bash
# make gpu-check: the GPU verification, in one run of at most 7 minutes on an H100.
#   1. build for sm_80 and sm_90 (one binary)
#   2. tests/gpu: every CUDA op and whole steps against the CPU reference
#   3. compute-sanitizer memcheck on one tiny training step
#   4. a short benchmark of every strategy on longalign-mix with the small model, and its report
# Logs and results go to $OUT (default out/gpu-check): at most 8 files, for the device tool.
# Exit status: 0 all passed; 1 a step failed (the log says which); 2 no usable GPU.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: >"$LOG"
JOBS=$(nproc 2>/dev/null || echo 4)
status=0
say() { echo "== $*" | tee -a "$LOG"; }
step() {   # step NAME TIMEOUT_S COMMAND...: runs, logs, records pass/fail
    local name=$1 limit=$2; shift 2
    say "$name: $*"
    local t0=$(date +%s)
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    say "$name: exit $rc after $(( $(date +%s) - t0 )) s"
    [ $rc -eq 0 ] || status=1
    return $rc
}

say "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$LOG" 2>&1 ||
    { say "no usable GPU (nvidia-smi failed)"; exit 2; }
command -v nvcc >/dev/null && nvcc --version | tail -n 2 >>"$LOG"

step build 240 make -j"$JOBS" labench gpu-tests || { say "build failed"; exit 1; }
step gpu-ops 200 build/tests/gpu/test_gpu_ops
step gpu-step 150 build/tests/gpu/test_gpu_step
step sanitizer 150 compute-sanitizer --tool memcheck --error-exitcode 3 \
    ./labench --backend cuda --model tiny --strategy packing-lw --steps 1 --samples 400 --len-scale 1/32 \
    --no-progress --out "$OUT/sanitizer-results.json"
rm -f "$OUT/sanitizer-results.json"
step benchmark 260 ./labench --backend cuda --model small --strategy all --len-dist data/longalign-mix.hist \
    --steps 2 --no-progress --out "$OUT/results.json"
step report 60 ./labench report "$OUT/results.json" -o "$OUT/REPORT.md" --no-plots
say "gpu-check done: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|^== .*exit" "$LOG" | tail -n 20
exit $status
