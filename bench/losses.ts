/**
 * The training kernels against PyTorch (Debian's python3-torch on OpenBLAS) on the same inputs:
 * head (512 x 512 + tanh + L2) forward and backward on anchors, positives and negatives plus each
 * loss, batch 256, 2 threads; and one AdamW step over the head's matrix. Reports the median of 20
 * repetitions, the ratio, and the largest difference of the losses and of dL/dW.
 * Needs: apt-get install python3-torch libopenblas0-openmp (not needed by CI).
 * Usage: npm run bench:losses
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { adamwStep, cosentLoss, cosineMseLoss, headBackward, headForward, mnrlLoss, tripletLoss } from '../src/native.js';
import { randomMatrix } from '../src/util/random.js';
import { describeMachine, machineLine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const B = 256;
const D = 512;
const THREADS = 2;
const REPS = 20;
const scale = 20;
const margin = 0.25;

if (!existsSync('/usr/bin/python3') || execFileSync('/usr/bin/python3', ['-c', 'import torch; print(1)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '1') {
  console.error('PyTorch is not installed for /usr/bin/python3: apt-get install python3-torch libopenblas0-openmp');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'laborspace-bench-losses-'));
try {
  const xa = randomMatrix(B, D, 1), xp = randomMatrix(B, D, 2), xn = randomMatrix(B, D, 3);
  const targets = Float32Array.from(randomMatrix(B, 1, 4), (v) => Math.abs(v));
  const w = randomMatrix(D, D, 5).map((v) => v * 0.05);
  const bias = randomMatrix(1, D, 6).map((v) => v * 0.01);
  const files: Record<string, Float32Array> = { xa, xp, xn, targets, w, b: bias };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(work, `${name}.f32`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  writeFileSync(join(work, 'meta.json'), JSON.stringify({ batch: B, dim: D, scale, margin, reps: REPS }));
  const torch = JSON.parse(
    execFileSync('/usr/bin/python3', [join(here, 'losses_torch.py'), work, String(THREADS)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(THREADS) } }).trim().split('\n').pop()!,
  ) as Record<string, { ms: number; loss?: number }>;

  type Case = (ea: Float32Array, ep: Float32Array, en: Float32Array) => { loss: number; grads: Float32Array[] };
  const cases: Record<string, Case> = {
    mnrl: (a, p) => {
      const r = mnrlLoss(a, p, D, { scale });
      return { loss: r.loss, grads: [r.gradAnchors, r.gradPositives] };
    },
    triplet: (a, p, n) => {
      const r = tripletLoss(a, p, n, D, { margin });
      return { loss: r.loss, grads: [r.gradAnchors, r.gradPositives, r.gradNegatives] };
    },
    cosine_mse: (a, p) => {
      const r = cosineMseLoss(a, p, targets, D);
      return { loss: r.loss, grads: [r.gradLeft, r.gradRight] };
    },
    cosent: (a, p) => {
      const r = cosentLoss(a, p, targets, D, { scale });
      return { loss: r.loss, grads: [r.gradLeft, r.gradRight] };
    },
  };
  const table = new Table({ head: ['head + loss, forward + backward', 'laborspace ms', 'PyTorch ms', 'speed-up', '|loss diff|', 'max |dW diff|'] });
  const rows: Record<string, unknown>[] = [];
  for (const [name, run] of Object.entries(cases)) {
    const step = () => {
      const xs = [xa, xp, xn];
      const outs = xs.map((x) => headForward(x, D, w, bias, D));
      const r = run(outs[0].embeddings, outs[1].embeddings, outs[2].embeddings);
      const gw = new Float32Array(D * D);
      r.grads.forEach((g, i) => {
        const h = headBackward(xs[i], outs[i], g, D, D);
        for (let j = 0; j < gw.length; j++) gw[j] += h.gradWeight[j];
      });
      return { loss: r.loss, gw };
    };
    let result = step();
    const times: number[] = [];
    for (let r = 0; r < REPS + 3; r++) {
      const t0 = process.hrtime.bigint();
      result = step();
      if (r >= 3) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const ms = [...times].sort((a, b) => a - b)[times.length >> 1];
    const peer = new Float32Array(readFileSync(join(work, `${name}.torch.f32`)).buffer.slice(0));
    let maxDiff = 0;
    for (let j = 0; j < peer.length; j++) maxDiff = Math.max(maxDiff, Math.abs(peer[j] - result.gw[j]));
    const lossDiff = Math.abs(result.loss - torch[name].loss!);
    table.push([name, ms.toFixed(2), torch[name].ms.toFixed(2), `${(torch[name].ms / ms).toFixed(2)}x`, lossDiff.toExponential(1), maxDiff.toExponential(1)]);
    rows.push({ name, ms, torchMs: torch[name].ms, lossDiff, maxGradDiff: maxDiff });
  }
  const m = new Float32Array(D * D), v = new Float32Array(D * D), params = w.slice(), grad = w.map((x) => x * 0.01);
  const adamTimes: number[] = [];
  for (let r = 0; r < REPS + 3; r++) {
    const t0 = process.hrtime.bigint();
    adamwStep(params, grad, m, v, { lr: 1e-3, weightDecay: 0.01, step: r + 1 });
    if (r >= 3) adamTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const adamMs = [...adamTimes].sort((a, b) => a - b)[adamTimes.length >> 1];
  table.push(['AdamW step (512 x 512)', adamMs.toFixed(3), torch.adamw.ms.toFixed(3), `${(torch.adamw.ms / adamMs).toFixed(2)}x`, '', '']);
  console.log(`\nTraining kernels, batch ${B}, dim ${D}, ${THREADS} threads, median of ${REPS}`);
  console.log(machineLine(describeMachine()));
  console.log(table.toString());
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'losses.json'), JSON.stringify({ machine: describeMachine(), batch: B, dim: D, threads: THREADS, rows, adamw: { ms: adamMs, torchMs: torch.adamw.ms } }, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
