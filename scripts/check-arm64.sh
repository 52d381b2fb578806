#!/usr/bin/env bash
# The native core on arm64, from this x86-64 machine: the whole addon cross-compiled and linked
# with Debian's aarch64 g++ (on arm64 only the scalar kernels exist: the SIMD files compile to
# nothing there), then native/check/kernels_check.cpp, built against the same kernels, run under
# qemu-user. (An arm64 Node does not start under qemu-user here, so the TypeScript tests cannot run
# on the arm64 build; the check covers the drivers they test.)
# Usage: bash scripts/check-arm64.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-arm64

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  # No recommends: qemu-user-binfmt would register handlers with the host kernel, which this does not need.
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# binding.gyp's sources, defines and flags, so the arm64 build is the addon's own.
gyp() { node -e "const t = JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8')).targets[0]; console.log($1)"; }
mapfile -t sources < <(gyp "t.sources.join('\\n')")
defines=$(gyp "t.defines.map((d) => '-D' + d).join(' ')")
flags="$(gyp "t.cflags_cc.join(' ')") -fPIC -pthread $defines -I$(node -p "require('node-addon-api').include_dir") -I$(node -p "require('node-api-headers').include_dir")"

echo "== the addon for arm64 ($(aarch64-linux-gnu-g++ --version | head -1))"
rm -rf "$out" && mkdir -p "$out/obj"
printf '%s\n' "${sources[@]}" | xargs -P 2 -I{} sh -c 'aarch64-linux-gnu-g++ $3 -c "$2" -o "$1/obj/$(echo "$2" | tr / _).o"' _ "$out" {} "$flags"
# Node's symbols are resolved when Node loads it, as on any Linux.
aarch64-linux-gnu-g++ -shared -pthread "$out"/obj/*.o -o "$out/laborspace_native.node"
machine=$(aarch64-linux-gnu-readelf -h "$out/laborspace_native.node" | sed -n 's/^ *Machine: *//p')
[ "$machine" = AArch64 ] || { echo "not an arm64 library: $out/laborspace_native.node is for '$machine'" >&2; exit 1; }
echo "built $out/laborspace_native.node ($(du -k "$out/laborspace_native.node" | cut -f1) KB, ELF for $machine)"

echo "== the kernels' check on arm64 (qemu-user)"
kernels=()
for o in "$out"/obj/native_src_*.o; do case "$o" in *native_src_addon_*) ;; *) kernels+=("$o") ;; esac; done
aarch64-linux-gnu-g++ $flags native/check/kernels_check.cpp "${kernels[@]}" -o "$out/kernels_check"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/kernels_check"
