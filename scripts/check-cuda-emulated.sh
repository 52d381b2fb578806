#!/usr/bin/env bash
# The CUDA code on a machine without a GPU: native/cuda's sources rewritten for the emulated runtime
# (native/check/cuda_emulation/cuda_runtime.h, by scripts/cuda-emulate.mjs) and built as C++, twice:
#  1. with the CPU kernels and native/check/cuda_kernels_check.cpp, run: it compares the CUDA
#     kernels with the CPU's at small odd sizes (bench/gpu/check.sh does so on a GPU, at full size);
#  2. into the addon, whose one emulated device runs the tests of the GPU paths (test/gpu.test.ts):
#     the device choice, the first step's check against the CPU, the fall-back when the GPU fails.
# Usage: bash scripts/check-cuda-emulated.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-cuda-emulated
node_include="$(dirname "$(dirname "$(command -v node)")")/include/node"
if [ ! -f "$node_include/node_api.h" ]; then
  echo "check-cuda-emulated: Node's headers are not in $node_include (they come with Node's own install)" >&2
  exit 1
fi
rm -rf "$out" && mkdir -p "$out/native/cuda" "$out/obj"
cp -r native/src native/check "$out/native/"
for f in native/cuda/*; do node scripts/cuda-emulate.mjs "$f" "$out/$f"; done
# binding.gyp's sources (a new kernel file needs no edit here), then the CUDA files as C++, each
# compiled once for both programs.
mapfile -t sources < <(node -e "const t = JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8')).targets[0];
  console.log(t.sources.join('\\n'))")
units=("${sources[@]/#/$out/}" "$out"/native/cuda/*.cu)
flags=(-std=c++20 -O2 -fPIC -fno-math-errno -pthread -DLABORSPACE_WITH_CUDA -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED
  -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS -I native/check/cuda_emulation -I "$node_include"
  -I "$(node -p "require('node-addon-api').include_dir")")
object() { local name="${1#"$out"/native/}"; echo "$out/obj/${name//\//_}.o"; }
running=()
for u in "${units[@]}"; do
  g++ "${flags[@]}" -x c++ -c "$u" -o "$(object "$u")" &
  running+=($!)
  if [ ${#running[@]} -ge "$(nproc)" ]; then wait "${running[0]}"; running=("${running[@]:1}"); fi
done
for pid in "${running[@]}"; do wait "$pid"; done
# The objects, but those whose path has $1 in it.
objects() { for u in "${units[@]}"; do [[ -n "${1:-}" && "$u" == *"$1"* ]] || object "$u"; done; }
mapfile -t kernels < <(objects /addon/)
g++ "${flags[@]}" "$out/native/check/cuda_kernels_check.cpp" "${kernels[@]}" -o "$out/cuda-kernels-check"
"$out/cuda-kernels-check"
mapfile -t addon < <(objects)
g++ -shared -pthread "${addon[@]}" -o "$out/laborspace_native.node"
LABORSPACE_NATIVE="$PWD/$out/laborspace_native.node" node --import tsx node_modules/uvu/bin.js test '^gpu\.test\.ts$'
