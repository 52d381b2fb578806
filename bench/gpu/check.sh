#!/usr/bin/env bash
# Builds bench/gpu/check.cu with the native sources and runs it: the CUDA kernels against the CPU
# ones on a machine with a GPU. Needs nvcc (CUDA 12 or 13) and a C++17 host compiler. The code is
# built for the GPU present; CUDA_ARCH (e.g. sm_90) names another, to build on a machine without one.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-gpu-check}
mkdir -p "$out"
# The CPU kernels: binding.gyp's sources but the Node glue. Read with Python, not Node: the GPU
# machines have nvcc and Python but no Node.js.
mapfile -t sources < <(python3 -c "import json; print('\\n'.join(s for s in json.load(open('binding.gyp'))['targets'][0]['sources'] if '/addon/' not in s))")
nvcc -O3 -std=c++17 -arch="${CUDA_ARCH:-native}" -Xcompiler -O3,-fno-math-errno,-pthread \
  bench/gpu/check.cu native/cuda/*.cu "${sources[@]}" -o "$out/gpu-check"
"$out/gpu-check"
