# Shared by run.sh (the check) and measure.sh (the measurement), sourced from the GPU bundle
# (make gpu-bundle). Sets B (the bundle), OUT, LOG; defines say, preflight, step and finish.
#
# preflight (at most about 10 s) stops the script with ONE line "gpu-check: preflight: ..." and
# exit status 2 when a piece is missing: the bundle's CUDA build, the CPU features it was built
# for, the NVIDIA driver and a GPU, cuBLAS, a library a binary cannot load. It prints what it
# found (GPU, driver, where each CUDA library, cuDNN and NCCL are, compute-sanitizer, Python
# with torch), and sets for the steps:
#   LB   (env LD_LIBRARY_PATH=...): the library path, for labench's own processes ONLY. Python
#        never gets it: the bundle's lib/ and the toolkit's lib64 ahead of torch's own wheels
#        are the classic cause of "undefined symbol" when torch imports.
#   REF  LB plus OPENBLAS_CORETYPE, for the steps that run the CPU reference (below).
#   LB_WRAP  a script that runs labench with LB's path, for Python to call (peer_torch.py).
# step NAME LIMIT_S KIND COMMAND... runs one step under `timeout`, line-buffered into the log,
# and records pass/fail; KIND "gpu" also fails a step that printed SKIP, since a GPU is there.

B=$(cd "$(dirname "$0")" && pwd)
# execute bits may not survive the copy to the GPU machine (an archive, a mount): restore them
# before anything checks or runs a binary
chmod +x "$B"/labench "$B"/test_* "$B"/bench_* "$B"/*.sh "$B"/*.py 2>/dev/null || true
# The CPU reference (test_cpu_ops, test_model, and the CPU side of test_gpu_ops/test_gpu_step) runs
# on the bundle's OpenBLAS 0.3.21 (DYNAMIC_ARCH), which picks its kernels for the CPU it finds; on
# a CPU newer than it knows it may pick wrong or slow ones, and a CPU-vs-GPU comparison would then
# fail for the wrong reason. The reference runs pin Haswell's kernels (AVX2 + FMA: on every CPU
# the bundle runs on, since it is built for x86-64-v3); the log records it.
REF_CORETYPE=${LABENCH_REF_CORETYPE:-Haswell}
OUT=${OUT:-$B/out}
mkdir -p "$OUT" || { echo "gpu-check: preflight: cannot create OUT=$OUT"; exit 2; }
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/$SCRIPT_NAME.log"
: >"$LOG"
STEPS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/labench-gpu.XXXXXX")
trap 'rm -rf "$STEPS_TMP"' EXIT
RESULTS=""          # one "name status seconds" line per step
FAILED=0

say() { echo "== $*" | tee -a "$LOG"; }
note() { echo "   $*" | tee -a "$LOG"; }
stop() {   # the one line that ends a preflight
    echo "gpu-check: preflight: $*" | tee -a "$LOG"
    exit 2
}

info_get() { sed -n "s/^$1: //p" "$B/BUILD-INFO" 2>/dev/null | head -n 1; }

# first folder (of the arguments) holding the file $1
find_in() {
    local f=$1 d
    shift
    for d in "$@"; do
        [ -n "$d" ] && [ -e "$d/$f" ] && { echo "$d"; return 0; }
    done
    return 1
}

# lib/*.xz (the bundle's largest libraries travel compressed) unpacked in place, once
unpack_libs() {
    local z t
    for z in "$B"/lib/*.xz; do
        [ -e "$z" ] || continue
        t=${z%.xz}
        [ -f "$t" ] && [ "$t" -nt "$z" ] && continue
        if command -v xz >/dev/null; then
            xz -dc "$z" >"$t.tmp"
        else
            python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$z" >"$t.tmp"
        fi || { rm -f "$t.tmp"; stop "cannot unpack $z into lib/ (needs xz or python3, and lib/ writable)"; }
        mv "$t.tmp" "$t"
        note "unpacked lib/$(basename "$t")"
    done
}

preflight() {
    local t0=$SECONDS
    say "$SCRIPT_NAME $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n); bundle $(info_get commit), built $(info_get built | cut -d' ' -f1)"
    [ -x "$B/labench" ] && [ -f "$B/BUILD-INFO" ] ||
        stop "no labench or BUILD-INFO next to this script: run the copy in the bundle (make gpu-bundle), not tests/gpu/"
    unpack_libs
    case "$(info_get cuda)" in
    yes) ;;
    *) stop "this bundle was built without nvcc (BUILD-INFO: $(info_get cuda)): rebuild it with make gpu-bundle where the CUDA toolkit is" ;;
    esac
    local major flag
    major=$(info_get cuda_major)
    # the CPU: the bundle's CPU code is built for $(info_get cpu_arch)
    if [ "$(info_get cpu_arch)" = "-march=x86-64-v3" ]; then
        for flag in avx2 fma bmi2 f16c movbe; do
            grep -qw "$flag" /proc/cpuinfo ||
                stop "this CPU lacks $flag, and the bundle's CPU code is built for x86-64-v3: rebuild with make gpu-bundle BUNDLE_CPU_ARCH=-march=x86-64-v2"
        done
    fi
    note "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
    # glibc: at least the newest symbol version the bundle needs
    local need_libc have_libc
    need_libc=$(info_get glibc)
    have_libc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')
    if [ -n "$need_libc" ] && [ -n "$have_libc" ] &&
        [ "$(printf '%s\n%s\n' "$need_libc" "$have_libc" | sort -V | head -n 1)" != "$need_libc" ]; then
        stop "glibc $have_libc is older than the $need_libc the bundle needs: build it on an older distribution"
    fi

    # the driver and the GPU
    command -v nvidia-smi >/dev/null || stop "nvidia-smi not found: no NVIDIA driver on this machine"
    local smi
    smi=$(timeout 8 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) ||
        stop "nvidia-smi sees no usable GPU: $(echo "$smi" | head -n 1)"
    [ -n "$smi" ] || stop "nvidia-smi lists no GPU"
    note "gpu: $(echo "$smi" | head -n 1)$( [ "$(echo "$smi" | wc -l)" -gt 1 ] && echo " (and $(($(echo "$smi" | wc -l) - 1)) more)")"
    local driver
    driver=$(echo "$smi" | head -n 1 | awk -F', ' '{ print $2 }' | cut -d. -f1)
    # CUDA 13.0's runtime needs driver 580 or newer (CUDA 12: 525)
    local need=580
    [ "$major" = 12 ] && need=525
    [ -n "$driver" ] && [ "$driver" -ge "$need" ] 2>/dev/null ||
        stop "driver $driver is older than CUDA $major needs ($need or newer)"
    # the bundle holds machine code for sm_80 (runs on 8.x) and sm_90 (9.0) only
    local cc
    cc=$(timeout 5 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
    case "$cc" in
    8.*|9.0|"") ;;
    *) stop "the GPU is compute capability $cc, and the bundle holds code for sm_80 and sm_90 only: rebuild with make gpu-bundle CUDA_ARCH=... for it" ;;
    esac

    # the CUDA libraries: the toolkit's lib64 and extras/CUPTI/lib64, the driver's folders, and
    # the Python wheels (nvidia/*/lib) of the python3 that holds torch
    PYTHON=""
    local py
    for py in python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
        command -v "$py" >/dev/null || continue
        if timeout 5 "$py" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") else 1)' 2>/dev/null; then
            PYTHON=$(command -v "$py")
            break
        fi
    done
    local wheel_dirs=""
    if [ -n "$PYTHON" ]; then
        wheel_dirs=$(timeout 5 "$PYTHON" -c '
import importlib.util as u, glob, os
s = u.find_spec("nvidia")
for d in (s.submodule_search_locations if s else []):
    for lib in sorted(glob.glob(os.path.join(d, "*", "lib"))):
        print(lib)' 2>/dev/null | tr '\n' ' ')
        note "python with torch: $PYTHON"
    else
        note "python with torch: none found (measure.sh's PyTorch peer will not run)"
    fi
    local homes="${CUDA_HOME:-} ${CUDA_PATH:-} /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -r)"
    local dirs="" h
    for h in $homes; do dirs="$dirs $h/lib64 $h/extras/CUPTI/lib64 $h/lib $h/targets/x86_64-linux/lib"; done
    dirs="$(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') $dirs $wheel_dirs /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64"
    local ldpath="$B/lib" lib d
    for lib in "libcublas.so.$major" "libcublasLt.so.$major" "libcupti.so.$major" libcuda.so.1; do
        # shellcheck disable=SC2086
        if d=$(find_in "$lib" $dirs); then
            note "found $lib in $d"
            case ":$ldpath:" in *":$d:"*) ;; *) ldpath="$ldpath:$d" ;; esac
            [ "$lib" = "libcupti.so.$major" ] && export LABENCH_CUPTI="$d/$lib"
        elif ldconfig -p 2>/dev/null | grep -q "$lib "; then
            note "found $lib through ldconfig"
        elif [ "$lib" = "libcupti.so.$major" ]; then
            note "note: $lib not found: labench times micro-batches with CUDA events, without kernel records"
        elif [ "$lib" = libcuda.so.1 ]; then
            stop "libcuda.so.1 (the NVIDIA driver's library) not found in /usr/local/nvidia, /usr/lib*, LD_LIBRARY_PATH or ldconfig"
        else
            stop "$lib not found (in \$CUDA_HOME, /usr/local/cuda*, extras/CUPTI, the torch wheels, LD_LIBRARY_PATH, ldconfig): set CUDA_HOME to the CUDA $major toolkit"
        fi
    done
    # NCCL and cuDNN are loaded by labench at run time (dlopen), from LABENCH_NCCL / LABENCH_CUDNN
    # when set: look in the same folders (the torch wheels' nvidia/nccl/lib and nvidia/cudnn/lib
    # included). Neither is required: without NCCL the nccl step fails with its reason, without
    # cuDNN labench's attention runs on its own (WMMA) kernels and says so.
    local opt
    # libcudart.so.N: cudnn-frontend (dynamic loading) dlopens the shared runtime for the few runtime
    # calls it makes itself (the workspace's memset); labench has it linked statically.
    for opt in "libnccl.so.2 LABENCH_NCCL dp-check (the nccl step) will fail" \
               "libcudnn.so.9 LABENCH_CUDNN labench's attention runs on its WMMA kernels" \
               "libcudart.so.$major - cuDNN attention may fail where cudnn-frontend needs it"; do
        set -- $opt
        lib=$1
        local var=$2
        shift 2
        # shellcheck disable=SC2086
        if d=$(find_in "$lib" $dirs); then
            note "found $lib in $d"
            case ":$ldpath:" in *":$d:"*) ;; *) ldpath="$ldpath:$d" ;; esac
            [ "$var" = - ] || export "$var=$d/$lib"
        elif ldconfig -p 2>/dev/null | grep -q "$lib "; then
            note "found $lib through ldconfig"
        else
            note "note: $lib not found: $*"
        fi
    done
    LB_LDPATH="$ldpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    LB=(env "LD_LIBRARY_PATH=$LB_LDPATH")
    REF=("${LB[@]}" "OPENBLAS_CORETYPE=$REF_CORETYPE")
    mkdir -p "$STEPS_TMP/bin"
    LB_WRAP="$STEPS_TMP/bin/labench"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$LB_LDPATH" "$B/labench" >"$LB_WRAP"
    chmod +x "$LB_WRAP"
    note "LD_LIBRARY_PATH for labench's processes only (not exported; Python keeps its own): $LB_LDPATH"
    note "CPU reference runs with OPENBLAS_CORETYPE=$REF_CORETYPE (the bundle's OpenBLAS: $(grep -m1 'libopenblas' "$B/BUILD-INFO" | sed 's/^ *//'))"

    # every binary loads: no library or symbol version "not found"
    local elf missing
    for elf in "$B"/labench "$B"/test_* "$B"/bench_*; do
        missing=$(LD_LIBRARY_PATH="$LB_LDPATH" ldd "$elf" 2>&1 | grep "not found" | head -n 1)
        [ -z "$missing" ] || stop "$(basename "$elf") cannot load: $(echo "$missing" | sed 's/^[[:space:]]*//')"
    done
    note "every binary loads (ldd: nothing not found)"

    # compute-sanitizer, by path; without it the sanitizer steps are skipped with a note
    SANITIZER=""
    local c
    for c in "$(command -v compute-sanitizer 2>/dev/null)" ${CUDA_HOME:+$CUDA_HOME/bin/compute-sanitizer} \
             ${CUDA_HOME:+$CUDA_HOME/compute-sanitizer/compute-sanitizer} /usr/local/cuda/bin/compute-sanitizer \
             /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
             /usr/local/cuda-*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer \
             $(for d in $wheel_dirs; do echo "$(dirname "$d")/compute-sanitizer/compute-sanitizer" "$(dirname "$d")/bin/compute-sanitizer"; done); do
        [ -n "$c" ] && [ -x "$c" ] && { SANITIZER=$c; break; }
    done
    note "compute-sanitizer: ${SANITIZER:-not found: the sanitizer steps are skipped}"

    LINEBUF=""
    command -v stdbuf >/dev/null && LINEBUF="stdbuf -oL -eL"
    note "preflight passed in $((SECONDS - t0)) s"
}

# BUDGET_S (optional): the script's whole time in seconds; each step's limit is cut to what is
# left of it, keeping BUDGET_KEEP_S for the report and the summary; a step that would get less
# than 20 s is skipped. Unset or 0: the steps' own limits.
BUDGET_S=${BUDGET_S:-0}
BUDGET_KEEP_S=20

# step NAME LIMIT_S KIND COMMAND...   (KIND: gpu | cpu)
step() {
    local name=$1 limit=$2 kind=$3
    shift 3
    if [ "$BUDGET_S" -gt 0 ] 2>/dev/null; then
        local left=$((BUDGET_S - SECONDS - BUDGET_KEEP_S))
        [ "$name" = report ] && left=$((BUDGET_S - SECONDS - 5))
        if [ "$left" -lt 20 ]; then
            skip_step "$name" "out of the time budget (BUDGET_S=$BUDGET_S, $SECONDS s used)"
            return
        fi
        [ "$left" -lt "$limit" ] && { note "$name: limit cut from $limit s to $left s (BUDGET_S=$BUDGET_S)"; limit=$left; }
    fi
    say "$name: $* (limit $limit s)"
    local t0=$SECONDS rc
    # shellcheck disable=SC2086
    timeout -k 5 "$limit" $LINEBUF "$@" 2>&1 | tee "$STEPS_TMP/$name.log" >>"$LOG"
    rc=${PIPESTATUS[0]}
    local status=passed
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="FAILED(timeout)"
    elif [ "$rc" -ne 0 ]; then
        status="FAILED(exit $rc)"
    elif [ "$kind" = gpu ] && grep -qE '^ *SKIP:|\[  SKIPPED \]' "$STEPS_TMP/$name.log"; then
        status="FAILED(printed SKIP while nvidia-smi sees a GPU)"
    fi
    [ "$status" = passed ] || FAILED=1
    say "$name: $status after $((SECONDS - t0)) s"
    RESULTS="$RESULTS$name $status $((SECONDS - t0))"$'\n'
}

skip_step() {   # skip_step NAME WHY
    say "$1: skipped ($2)"
    RESULTS="$RESULTS$1 skipped 0"$'\n'
}

# the summary, last in the output (the device tool returns the end of it); exit status
finish() {
    {
        echo "== $SCRIPT_NAME summary ($(date -u +%H:%M:%SZ), $SECONDS s in all; logs and results in $OUT; CPU reference with OPENBLAS_CORETYPE=$REF_CORETYPE):"
        printf '%s' "$RESULTS" | awk '{ s = $2; for (i = 3; i < NF; i++) s = s " " $i; printf "   %-12s %-60s %5s s\n", $1, s, $NF }'
        grep -E '^\[  (FAILED|PASSED) \]|<-- FAIL|ERROR SUMMARY: [1-9]|labench: ' "$LOG" | grep -v '^== ' | tail -n 15 | sed 's/^/   | /'
        echo "== $SCRIPT_NAME: $([ "$FAILED" -eq 0 ] && echo PASSED || echo FAILED)"
    } | tee -a "$LOG"
    # the device tool brings back files of at most 16 MiB
    if [ "$(wc -c <"$LOG")" -gt $((15 << 20)) ]; then
        gzip -f "$LOG" && echo "   (the log was over 15 MiB: compressed to $LOG.gz)"
    fi
    [ "$FAILED" -eq 0 ]
}
