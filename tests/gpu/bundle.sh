#!/bin/sh
# Assembles the GPU bundle (make gpu-bundle): a folder that runs on a bare x86-64 Linux with only
# the NVIDIA driver and the CUDA libraries.
#
#   usage: tests/gpu/bundle.sh OUTDIR ELF...      (env: CC, NVCC, CPU_ARCH, for the record)
#
# Each ELF is copied stripped of debug info (device code keeps its -lineinfo, for
# compute-sanitizer) with RUNPATH $ORIGIN/lib. Every shared library they load that is not on the
# allow-list below is copied into lib/ under its soname, with RUNPATH $ORIGIN so that it finds
# its own dependencies there too. Libraries that must never be needed (MPI, NCCL: NCCL is
# loaded at run time) stop the build. The folder is written under a temporary name and renamed.
set -eu
out=$1
shift
[ $# -gt 0 ] || { echo "bundle.sh: no binaries given" >&2; exit 2; }
command -v patchelf >/dev/null || { echo "bundle.sh: patchelf not found (scripts/setup.sh installs it)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/lib" "$tmp/data" "$tmp/scripts"
trap 'rm -rf "$tmp"' EXIT

# The allow-list: what every GPU machine has (glibc's family, the C++ runtime, the driver and
# the CUDA toolkit's libraries, found there by run.sh). tests/test_gpu_bundle.c holds the same.
allowed() {
    case "$1" in
    linux-vdso.so.*|ld-linux-x86-64.so.*|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|\
    libutil.so.*|libresolv.so.*|libstdc++.so.*|libgcc_s.so.*|libcuda.so.*|libcublas.so.*|\
    libcublasLt.so.*) return 0 ;;
    esac
    return 1
}
forbidden() {
    case "$1" in
    libmpi*|libopen-pal*|libopen-rte*|libpmix*|libnccl*|libcupti*|libcudnn*|libcudart.so*) return 0 ;;
    esac
    return 1
}

info="$tmp/BUILD-INFO"
{
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'))"
    echo "commit: $(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo -dirty)"
    echo "cc: $(${CC:-cc} --version | head -n 1)"
    if [ -n "${NVCC:-}" ]; then
        echo "cuda: yes"
        echo "nvcc: $($NVCC --version | tail -n 2 | head -n 1)"
        # the CUDA major the binaries were built for: the sonames run.sh must find (libcublas.so.N)
        echo "cuda_major: $($NVCC --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
    else
        echo "cuda: no (built without nvcc: labench has the CPU backend only)"
    fi
    # cuDNN attention: compiled in when the build had cudnn-frontend's headers (libcudnn is
    # dlopened on the GPU machine; the preflight says where it was found)
    if [ -n "${CUDNN_FE:-}" ]; then
        echo "cudnn_attention: yes (cudnn-frontend $(sed -n 's/^#define CUDNN_FRONTEND_\(MAJOR\|MINOR\|PATCH\)_VERSION \([0-9]*\).*/\2/p' "$CUDNN_FE/cudnn_frontend_version.h" | paste -sd.))"
    else
        echo "cudnn_attention: no (built without cudnn-frontend's headers: WMMA attention only)"
    fi
    echo "cpu_arch: ${CPU_ARCH:-default}"
    echo "mpi: no (NOMPI=1)"
} >"$info"

for elf in "$@"; do
    name=$(basename "$elf")
    cp "$elf" "$tmp/$name"
    chmod u+w "$tmp/$name"
    strip --strip-debug "$tmp/$name"
    patchelf --set-rpath '$ORIGIN/lib' "$tmp/$name"
done

# ldd lists the whole closure (dependencies of dependencies too), as resolved on this machine.
echo "libraries:" >>"$info"
for elf in "$@"; do ldd "$elf"; done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
while read -r soname path; do
    if forbidden "$soname"; then
        echo "bundle.sh: $soname is needed (from $path); the bundle must not need MPI, NCCL, CUPTI, cuDNN or a shared CUDA runtime" >&2
        exit 1
    fi
    allowed "$soname" && continue
    real=$(readlink -f "$path")
    cp -L "$path" "$tmp/lib/$soname"
    chmod u+w "$tmp/lib/$soname"
    patchelf --set-rpath '$ORIGIN' "$tmp/lib/$soname"
    pkg=$(dpkg -S "$real" 2>/dev/null | head -n 1 | cut -d: -f1 || true)
    ver=$( [ -n "$pkg" ] && dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
    echo "  lib/$soname <- $real${pkg:+ (Debian $pkg $ver)}" >>"$info"
done

# labench's OpenMP runtime must be the compiler's own libgomp, and OpenBLAS Debian's generic
# DYNAMIC_ARCH build (it picks its kernels for the CPU it runs on, at run time).
gomp=$(ldd "$1" | awk '$1 == "libgomp.so.1" { print $3 }')
if [ -n "$gomp" ]; then
    want=$(readlink -f "$(${CC:-cc} -print-file-name=libgomp.so)")
    cmp -s "$want" "$gomp" ||
        { echo "bundle.sh: $1 loads $gomp, not $want, the libgomp of ${CC:-cc}" >&2; exit 1; }
    echo "libgomp: the one of ${CC:-cc} ($want)" >>"$info"
fi
if [ -f "$tmp/lib/libopenblas.so.0" ]; then
    grep -q DYNAMIC_ARCH "$tmp/lib/libopenblas.so.0" ||
        { echo "bundle.sh: lib/libopenblas.so.0 is not a DYNAMIC_ARCH build" >&2; exit 1; }
fi

# the newest glibc symbol version any bundled ELF needs: the oldest glibc it runs on
glibc=$(for f in "$tmp"/* "$tmp"/lib/*; do [ -f "$f" ] && objdump -T "$f" 2>/dev/null || true; done |
        grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V -u | tail -n 1)
echo "glibc: $glibc" >>"$info"

# Libraries over 8 MiB (OpenBLAS: 37 MB, with the kernels of every CPU it knows) travel
# xz-compressed (4 MB); the preflight of run.sh / measure.sh unpacks them in place. The
# compressed file is kept next to the build and reused while its source is unchanged.
cache=$(dirname "$1")/bundle-cache
mkdir -p "$cache"
for f in "$tmp"/lib/*; do
    [ "$(wc -c <"$f")" -gt $((8 << 20)) ] || continue
    c="$cache/$(basename "$f").xz"
    if [ ! -f "$c" ] || ! cmp -s "$f" "$cache/$(basename "$f")"; then
        xz -9 -T0 -c "$f" >"$c.tmp" && mv "$c.tmp" "$c"
        cp "$f" "$cache/$(basename "$f")"
    fi
    cp "$c" "$f.xz"
    rm "$f"
    echo "  lib/$(basename "$f") travels as lib/$(basename "$f").xz (unpacked by the preflight)" >>"$info"
done

cp "$here/run.sh" "$here/measure.sh" "$here/gpu_common.sh" "$here/peer_torch.py" "$here/sdpa_torch.py" "$tmp/"
cp "$root/scripts/check_grad_torch.py" "$tmp/scripts/"
cp "$root"/data/*.hist "$tmp/data/"
chmod +x "$tmp/run.sh" "$tmp/measure.sh" "$tmp/peer_torch.py" "$tmp/sdpa_torch.py"

bytes=$(du -sb "$tmp" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "size: $bytes bytes ($mib MiB), without README.md" >>"$info"
cat >"$tmp/README.md" <<EOF
# labench GPU bundle

Built by \`make gpu-bundle\` (tests/gpu/bundle.sh); BUILD-INFO says from what, where and when.
It runs on an x86-64 Linux with the NVIDIA driver and the CUDA $(sed -n 's/^cuda_major: //p' "$info") libraries (cuBLAS;
CUPTI optional): nothing to build or install there.

    OUT=/some/folder ./run.sh       # the check: about 5 minutes on an H100/H200; exit 0 / 1 / 2
    OUT=/some/folder ./measure.sh   # once the check passes: every strategy, and the PyTorch peer

Logs and results go to \$OUT (default ./out): at most 8 files. Then commit a dated record of the
run under docs/gpu-runs/ (docs/gpu-runs/README.md says what it holds).

Size: $mib MiB ($bytes bytes) without this README, measured when it was built.

| file | what |
|---|---|
| labench | the CLI, CUDA backend (cudart linked statically) |
| test_gpu_ops, test_gpu_step | the GPU tests (tests/gpu/README.md) |
| bench_attention, sdpa_torch.py | the attention kernels' speed, and PyTorch SDPA's on the same shapes (measure.sh) |
| test_cpu_ops, test_model | the CPU reference's own tests, run first on the GPU machine's CPU |
| lib/ | every shared library the binaries need beyond glibc, libstdc++/libgcc_s and CUDA's (the largest xz-compressed: run.sh unpacks them) |
| run.sh, measure.sh, gpu_common.sh | the check, the measurement, their shared preflight |
| peer_torch.py, scripts/ | the PyTorch peer of the step (run by measure.sh) |
| data/ | the length distributions |
EOF

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "gpu-bundle: $out/ ($mib MiB; $(ls "$out/lib" | wc -l) libraries in lib/)"
