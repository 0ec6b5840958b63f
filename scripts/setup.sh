#!/usr/bin/env bash
# Installs the Debian packages labench builds and tests with (skips what is already there).
# The CUDA toolkit is optional: with nvcc at $CUDA_HOME/bin (default /usr/local/cuda) the build
# adds the CUDA backend; without it labench is CPU-only.
set -euo pipefail
PKGS=(build-essential libcmocka-dev libjansson-dev zlib1g-dev libopenblas-dev libopenblas-openmp-dev gnuplot-nox python3
      python3-venv git patchelf
      clang-14 libclang-rt-14-dev libomp-14-dev)   # clang, libFuzzer and OpenMP for `make fuzz`
missing=()
PKGS+=(openmpi-bin libopenmpi-dev)   # real data parallelism: `mpirun -np W labench --dp real`, tests/test_dp.c
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: packages ready"

# scripts/lengths.py tokenizes datasets with Hugging Face's tokenizers library; its test uses a
# tokenizer.json that a PyPI package ships (anthropic 0.34.2 carries one), never a hub download.
# Debian has no python3-tokenizers, so both go, pinned and without their dependencies (neither is
# imported for more than a tokenizer file), into .venv/ at the repository root. Without a network
# the build and every other test still work, and that test says it skipped.
cd "$(dirname "$0")/.."
VENV=.venv
if ! "$VENV/bin/python3" -c 'import tokenizers, importlib.util as u; assert u.find_spec("anthropic")' 2>/dev/null; then
    echo "setup: installing tokenizers and a test tokenizer into $VENV (pip)"
    if python3 -m venv "$VENV" &&
        "$VENV/bin/python3" -m pip install -q --disable-pip-version-check --no-deps \
            tokenizers==0.22.2 anthropic==0.34.2; then
        echo "setup: $VENV ready"
    else
        echo "setup: could not install tokenizers into $VENV; scripts/lengths.py's test will skip"
    fi
fi

# cuDNN's fused attention (kernels/cuda/attention_cudnn.cu) is built with NVIDIA's cudnn-frontend,
# header-only C++ (MIT) that Debian does not package. Its headers come from PyPI's
# nvidia-cudnn-frontend wheel (they sit in the wheel's include/), unpacked into build-deps/
# (git-ignored, never committed). Pinned to 1.19.1: NVIDIA's recommended frontend for cuDNN
# 9.19.1 and later, the cuDNN of the toolkit here and of PyTorch 2.11's wheels. Any cp3x wheel
# holds the same headers; 3.11 / manylinux_2_28 is named so that pip picks one. Without it (no
# network) the build compiles attention_cudnn.cu to a stub and labench's attention is WMMA only.
FE_VERSION=1.19.1
FE_DIR=build-deps/cudnn-frontend-$FE_VERSION
if [ ! -f "$FE_DIR/include/cudnn_frontend.h" ]; then
    echo "setup: fetching cudnn-frontend $FE_VERSION's headers into $FE_DIR (pip download)"
    fe_tmp=$(mktemp -d)
    if python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 \
            -d "$fe_tmp" "nvidia-cudnn-frontend==$FE_VERSION" &&
        python3 - "$fe_tmp" "$FE_DIR" <<'PY'
import glob, os, sys, zipfile
whl = glob.glob(os.path.join(sys.argv[1], "nvidia_cudnn_frontend-*.whl"))[0]
out = sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("include/") and not n.endswith("/")]
    if not any(n == "include/cudnn_frontend.h" for n in names):
        sys.exit("no include/cudnn_frontend.h in " + whl)
    tmp = out + ".tmp"
    for n in names:
        z.extract(n, tmp)
os.rename(tmp, out)
PY
    then
        echo "setup: $FE_DIR ready"
    else
        echo "setup: could not fetch cudnn-frontend; attention_cudnn.cu builds as a stub (WMMA attention only)"
    fi
    rm -rf "$fe_tmp"
fi
