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
