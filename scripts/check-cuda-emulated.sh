#!/usr/bin/env bash
# The CUDA kernels on a machine without a GPU: native/cuda's sources rewritten for the emulated
# runtime (native/check/cuda_emulation/cuda_runtime.h, by scripts/cuda-emulate.mjs), built as C++
# with the CPU kernels and native/check/cuda_kernels_check.cpp, and run: it compares them with the
# CPU's at small odd sizes. bench/gpu/check.sh makes the same comparison on a GPU, at full size.
# Usage: bash scripts/check-cuda-emulated.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-cuda-emulated
rm -rf "$out" && mkdir -p "$out/native/cuda"
cp -r native/src native/check "$out/native/"
for f in native/cuda/*; do node scripts/cuda-emulate.mjs "$f" "$out/$f"; done
# The CPU kernels: binding.gyp's sources but the Node glue, so a new kernel file needs no edit here.
mapfile -t sources < <(node -e "const t = JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8')).targets[0];
  console.log(t.sources.filter((s) => !s.includes('/addon/')).join('\\n'))")
g++ -std=c++20 -O2 -fno-math-errno -pthread -I native/check/cuda_emulation \
  "$out/native/check/cuda_kernels_check.cpp" -x c++ "$out/native/cuda/cuda_encoder.cu" "$out/native/cuda/cuda_training.cu" \
  -x none $(printf "$out/%s " "${sources[@]}") -o "$out/cuda-kernels-check"
"$out/cuda-kernels-check"
