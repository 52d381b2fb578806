// Rewrites CUDA sources for the CPU emulation (native/check/cuda_emulation/cuda_runtime.h):
// `kernel<<<config>>>(args);` becomes a call of emulated_launch with the arguments evaluated once,
// and `extern __shared__` arrays point at the launch's dynamic shared memory.
// Usage: node scripts/cuda-emulate.mjs IN OUT
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
const source = readFileSync(input, 'utf8')
  .replace(/extern __shared__ float (\w+)\[\];/g, 'float* $1 = emulated_dynamic_shared();')
  .replace(/(\w+(?:<[^<>;]*>)?)<<<([\s\S]*?)>>>\(([\s\S]*?)\);/g, (_, kernel, config, args) =>
    `{ auto emulated_args = std::make_tuple(${args}); emulated_launch([&] { std::apply([&](auto&&... a) { ${kernel}(a...); }, emulated_args); }, ${config}); }`);
writeFileSync(output, source);
