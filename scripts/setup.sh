#!/usr/bin/env bash
# Installs the Debian packages labench builds and tests with (skips what is already there).
# The CUDA toolkit is optional: with nvcc at $CUDA_HOME/bin (default /usr/local/cuda) the build
# adds the CUDA backend; without it labench is CPU-only.
set -euo pipefail
PKGS=(build-essential libcmocka-dev libjansson-dev libopenblas-dev gnuplot-nox python3 git
      clang-14 libclang-rt-14-dev libomp-14-dev)   # clang, libFuzzer and OpenMP for `make fuzz`
missing=()
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
