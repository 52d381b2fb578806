#!/usr/bin/env bash
# Builds bench/gpu/check.cu with the native sources and runs it: the CUDA kernels against the CPU
# ones on a machine with a GPU. Needs nvcc (CUDA 12 or 13) and a C++17 host compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-gpu-check}
mkdir -p "$out"
nvcc -O3 -std=c++17 -arch=native -Xcompiler -O3,-fno-math-errno,-pthread \
  bench/gpu/check.cu native/cuda/cuda_topk.cu native/cuda/cuda_training.cu native/cuda/cuda_encoder.cu \
  native/src/dispatch.cpp native/src/kernels_scalar.cpp native/src/kernels_avx2.cpp native/src/kernels_avx512.cpp \
  native/src/gemm.cpp native/src/parallel.cpp native/src/scoring.cpp native/src/training.cpp native/src/encoder.cpp -o "$out/gpu-check"
"$out/gpu-check"
