/**
 * The training kernels against PyTorch (Debian's python3-torch on OpenBLAS) on the same inputs,
 * batch 256, dim 512, 2 threads: each loss forward and backward on unit rows; each loss with the
 * head (512 x 512 + tanh + L2) in front, over the sides the loss reads (anchors and positives;
 * negatives too for the triplet loss); the head's two products alone at the MNRL step's shapes
 * (x W^T and dL/dW = g^T x over the 512 stacked rows), to show the products' own share of the peak
 * apart from the step's row work; one AdamW step over the head's matrix. Reports the median of
 * 20 repetitions (the better of 3 rounds that alternate between the two sides; PyTorch in each of its
 * kernel configurations, bench/machine.ts), the ratio, the largest difference of the losses and of
 * the gradients, and for the cases with matrix products the share of the FMA peak (`probeFmaPeak`,
 * on the ISA in use) their products reach over the whole case.
 * Needs: apt-get install python3-torch libopenblas0-openmp (not needed by CI).
 * Usage: npm run bench:losses (LABORSPACE_ISA=avx2 npm run bench:losses for the AVX2 kernels)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { adamwStep, cosentLoss, cosineMseLoss, headForward, headLossStep, matmul, mnrlLoss, probeFmaPeak, setThreads, tripletLoss, type LossKind } from '../src/native.js';
import { lossSides } from '../src/train/trainer.js';
import { randomMatrix } from '../src/util/random.js';
import { describeMachine, machineLine, peerConfigs, requireTorchOnOpenBlas } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const B = 256;
const D = 512;
const THREADS = 2;
const REPS = 20;
const WARM_UP_MS = 200;
const ROUNDS = 3;
const scale = 20;
const margin = 0.25;

requireTorchOnOpenBlas();

/**
 * Floating-point operations of a case's matrix products: MNRL's scores S = A P^T and its two
 * gradient products (B x B x D each); with the head, x W over the sides it reads and dL/dW = x^T dY
 * (sides x B x D x D each), which are also the products-alone case at two sides. The other losses are row dots, not products.
 */
function productFlop(name: string): number {
  const mnrl = 3 * B * B * D;
  if (name === 'mnrl_raw') return 2 * mnrl;
  if (name === 'products') return 2 * 2 * (2 * B) * D * D;
  if (name.endsWith('_raw') || name === 'adamw') return 0;
  return 2 * (2 * lossSides(name as LossKind) * B * D * D + (name === 'mnrl' ? mnrl : 0));
}

setThreads(THREADS);
const work = mkdtempSync(join(tmpdir(), 'laborspace-bench-losses-'));
try {
  const xa = randomMatrix(B, D, 1), xp = randomMatrix(B, D, 2), xn = randomMatrix(B, D, 3);
  const targets = Float32Array.from(randomMatrix(B, 1, 4), (v) => Math.abs(v));
  const w = randomMatrix(D, D, 5).map((v) => v * 0.05);
  const bias = randomMatrix(1, D, 6).map((v) => v * 0.01);
  const files: Record<string, Float32Array> = { xa, xp, xn, targets, w, b: bias };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(work, `${name}.f32`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  writeFileSync(join(work, 'meta.json'), JSON.stringify({ batch: B, dim: D, scale, margin, reps: REPS }));
  const runTorch = (env: NodeJS.ProcessEnv) =>
    JSON.parse(
      execFileSync('/usr/bin/python3', [join(here, 'losses_torch.py'), work, String(THREADS)], { encoding: 'utf8', env }).trim().split('\n').pop()!,
    ) as Record<string, { ms: number; loss?: number }>;

  const units = [xa, xp, xn].map((x) => headForward(x, D, w, bias, D).embeddings);
  // Each case warms up for three repetitions and at least WARM_UP_MS: the first ~50 ms after a
  // PyTorch process ran measured twice as slow here (MNRL loss only 2.86 ms first, 1.46 ms later).
  const median = (run: () => void): number => {
    const start = performance.now();
    for (let warm = 0; warm < 3 || performance.now() - start < WARM_UP_MS; warm++) run();
    const times: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const t0 = process.hrtime.bigint();
      run();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return [...times].sort((a, b) => a - b)[times.length >> 1];
  };
  // The loss alone on unit rows (the head's outputs), forward and backward, every side's gradient
  // (PyTorch computes the same), written into arrays reused across repetitions as a training loop
  // would (PyTorch's caching allocator does the same for its side).
  // Each case has its own arrays: the gradients kept for the comparison must not be overwritten.
  const sideArray = () => new Float32Array(B * D);
  const sides3 = () => ({ gradAnchors: sideArray(), gradPositives: sideArray(), gradNegatives: sideArray() });
  const pair = () => ({ gradLeft: sideArray(), gradRight: sideArray() });
  const [mnrlOut, tripletOut, mseOut, cosentOut] = [sides3(), sides3(), pair(), pair()];
  const raw: Record<LossKind, () => { loss: number; grad: Float32Array }> = {
    mnrl: () => {
      const r = mnrlLoss(units[0], units[1], D, { scale, out: mnrlOut });
      return { loss: r.loss, grad: r.gradAnchors };
    },
    triplet: () => {
      const r = tripletLoss(units[0], units[1], units[2], D, { margin, out: tripletOut });
      return { loss: r.loss, grad: r.gradAnchors };
    },
    cosine_mse: () => {
      const r = cosineMseLoss(units[0], units[1], targets, D, { out: mseOut });
      return { loss: r.loss, grad: r.gradLeft };
    },
    cosent: () => {
      const r = cosentLoss(units[0], units[1], targets, D, { scale, out: cosentOut });
      return { loss: r.loss, grad: r.gradLeft };
    },
  };
  // The head (512 x 512 + tanh + L2) in front: the sides a loss reads are stacked and go through it once.
  const withHead = (name: LossKind) => {
    const x = new Float32Array(lossSides(name) * B * D);
    [xa, xp, xn].slice(0, lossSides(name)).forEach((side, i) => x.set(side, i * B * D));
    const options = { scale, margin, targets, device: 'cpu', out: { gradWeight: new Float32Array(D * D), gradBias: new Float32Array(D) } } as const;
    return () => {
      const r = headLossStep(name, x, D, w, bias, D, options);
      return { loss: r.loss, grad: r.gradWeight! };
    };
  };
  // The head's products alone: the stacked anchors and positives through W, and a gradient of the
  // same shape (negatives over anchors, a stand-in) back to dL/dW.
  const stacked = (first: Float32Array, second: Float32Array) => {
    const both = new Float32Array(2 * B * D);
    both.set(first);
    both.set(second, B * D);
    return both;
  };
  // Written into kept arrays, as the step's own products are.
  const x2 = stacked(xa, xp), g2 = stacked(xn, xa), h2 = new Float32Array(2 * B * D), gw2 = new Float32Array(D * D);
  const products = () => {
    matmul(x2, w, { m: 2 * B, n: D, k: D, transposeB: true, out: { product: h2 } });
    return { loss: 0, grad: matmul(g2, x2, { m: D, n: D, k: 2 * B, transposeA: true, out: { product: gw2 } }) };
  };
  const m = new Float32Array(D * D), v = new Float32Array(D * D), params = w.slice(), grad = w.map((x) => x * 0.01);
  let adamStep = 0;
  const cases: { label: string; name: string; run: () => { loss: number; grad?: Float32Array } }[] = [
    ...(Object.keys(raw) as LossKind[]).map((name) => ({ label: `${name} (loss only)`, name: `${name}_raw`, run: raw[name] })),
    ...(Object.keys(raw) as LossKind[]).map((name) => ({ label: `${name} + head (dL/dW)`, name, run: withHead(name) })),
    { label: "the head's products alone", name: 'products', run: products },
    { label: 'AdamW step (512 x 512)', name: 'adamw', run: () => (adamwStep(params, grad, m, v, { lr: 1e-3, weightDecay: 0.01, step: ++adamStep }), { loss: 0 }) },
  ];
  // Rounds alternate between the two sides, and each side keeps its best median: on a shared
  // machine, interference then falls on both alike.
  const ours = new Map<string, { ms: number; loss: number; grad?: Float32Array }>();
  const theirs = new Map<string, { ms: number; loss?: number; kernels: string }>();
  const keepBest = <T extends { ms: number }>(best: Map<string, T>, name: string, entry: T) => {
    const had = best.get(name);
    if (!had || entry.ms < had.ms) best.set(name, entry);
  };
  // The peak is probed in every round and the highest kept: the VM's speed swings from one minute
  // to the next, and a share against a peak taken in a slow minute would flatter ours.
  let peak = 0;
  for (let round = 0; round < ROUNDS; round++) {
    peak = Math.max(peak, probeFmaPeak(THREADS));
    for (const config of peerConfigs(THREADS))
      for (const [name, peer] of Object.entries(runTorch(config.env))) keepBest(theirs, name, { ...peer, kernels: config.label });
    for (const c of cases) {
      let result = c.run();
      const ms = median(() => (result = c.run()));
      keepBest(ours, c.name, { ms, ...result });
    }
  }
  peak = Math.max(peak, probeFmaPeak(THREADS));
  const table = new Table({ head: ['forward + backward', 'laborspace ms', 'PyTorch ms', 'PyTorch kernels', 'speed-up', 'products GFLOP/s', `share of FMA peak (${(peak / 1e9).toFixed(0)})`, '|loss diff|', 'max |grad diff|'] });
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const mine = ours.get(c.name)!, peer = theirs.get(c.name)!;
    const digits = c.name === 'adamw' ? 3 : 2;
    const flop = productFlop(c.name);
    const rate = flop / (mine.ms / 1e3);
    const cells = [c.label, mine.ms.toFixed(digits), peer.ms.toFixed(digits), peer.kernels, `${(peer.ms / mine.ms).toFixed(2)}x`, flop ? (rate / 1e9).toFixed(0) : '', flop ? `${((rate / peak) * 100).toFixed(0)}%` : ''];
    if (!mine.grad) {
      table.push([...cells, '', '']);
      rows.push({ name: c.name, ms: mine.ms, torchMs: peer.ms, torchKernels: peer.kernels });
      continue;
    }
    const torchGrad = new Float32Array(readFileSync(join(work, `${c.name}.torch.f32`)).buffer.slice(0));
    let maxDiff = 0;
    for (let j = 0; j < torchGrad.length; j++) maxDiff = Math.max(maxDiff, Math.abs(torchGrad[j] - mine.grad[j]));
    const lossDiff = Math.abs(mine.loss - peer.loss!);
    table.push([...cells, lossDiff.toExponential(1), maxDiff.toExponential(1)]);
    rows.push({ name: c.name, ms: mine.ms, torchMs: peer.ms, torchKernels: peer.kernels, productFlop: flop, lossDiff, maxGradDiff: maxDiff });
  }
  console.log(`\nTraining kernels, batch ${B}, dim ${D}, ${THREADS} threads, best of ${ROUNDS} alternating rounds of the median of ${REPS}`);
  console.log(machineLine(describeMachine()));
  console.log(table.toString());
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'losses.json'), JSON.stringify({ machine: describeMachine(), batch: B, dim: D, threads: THREADS, rounds: ROUNDS, fmaPeak: peak, rows }, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
