/**
 * GPU check for the CUDA top-k: on a machine with a GPU and a CUDA build
 * (npm run build:cuda; LABORSPACE_NATIVE=build-cuda/Release/laborspace_native.node), compares the
 * CUDA results with the CPU kernels on the same data and times both. Exits 1 on any mismatch.
 * Usage: LABORSPACE_NATIVE=... node --import tsx bench/cuda-topk.ts
 */
import Table from 'cli-table3';

import { nativeInfo, topk, type Metric } from '../src/native.js';
import { randomMatrix } from '../src/util/random.js';
import { describeMachine, machineLine } from './machine.js';

const info = nativeInfo();
if (!info.cuda.compiled || info.cuda.devices === 0) {
  console.log(`nothing to check: CUDA ${info.cuda.compiled ? 'is compiled but no device answers' : 'is not compiled in this build'}`);
  process.exit(0);
}

function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const cases: { m: number; n: number; dim: number; k: number; metric: Metric; masked: boolean }[] = [
  { m: 1000, n: 20000, dim: 512, k: 10, metric: 'dot', masked: false },
  { m: 1000, n: 20000, dim: 512, k: 10, metric: 'cosine', masked: true },
  { m: 37, n: 5003, dim: 513, k: 128, metric: 'cosine', masked: false },
  { m: 5000, n: 100000, dim: 512, k: 10, metric: 'dot', masked: false },
];

let failures = 0;
const table = new Table({ head: ['m x n x dim', 'k', 'metric', 'mask', 'cpu ms', 'cuda ms', 'speed-up', 'max |score diff|', 'rank mismatches'] });
for (const c of cases) {
  const q = randomMatrix(c.m, c.dim, 1);
  const x = randomMatrix(c.n, c.dim, 2);
  const mask = c.masked ? Uint8Array.from({ length: c.n }, (_, j) => (j % 5 === 0 ? 0 : 1)) : undefined;
  const options = { k: c.k, metric: c.metric, mask };
  topk(q.subarray(0, c.dim), x, c.dim, { ...options, device: 'cuda' }); // context start-up
  let cpu = topk(q, x, c.dim, { ...options, device: 'cpu' });
  let gpu = cpu;
  const cpuTime = seconds(() => (cpu = topk(q, x, c.dim, { ...options, device: 'cpu' })));
  const gpuTime = seconds(() => (gpu = topk(q, x, c.dim, { ...options, device: 'cuda' })));
  let maxDiff = 0;
  let mismatches = 0;
  for (let e = 0; e < cpu.scores.length; e++) {
    maxDiff = Math.max(maxDiff, Math.abs(cpu.scores[e] - gpu.scores[e]));
    // Different summation orders may swap near-equal neighbours; anything else is an error.
    if (cpu.indices[e] !== gpu.indices[e] && Math.abs(cpu.scores[e] - gpu.scores[e]) > 1e-4) mismatches++;
  }
  if (gpu.device !== 'cuda' || maxDiff > 1e-3 || mismatches > 0) failures++;
  table.push([`${c.m} x ${c.n} x ${c.dim}`, c.k, c.metric, c.masked ? 'yes' : 'no', (cpuTime * 1e3).toFixed(1), (gpuTime * 1e3).toFixed(1), `${(cpuTime / gpuTime).toFixed(1)}x`, maxDiff.toExponential(1), mismatches]);
}
console.log(machineLine(describeMachine()));
console.log(`GPU: ${info.cuda.name}`);
console.log(table.toString());
if (failures) {
  console.error(`${failures} case(s) differ between CUDA and CPU`);
  process.exit(1);
}
