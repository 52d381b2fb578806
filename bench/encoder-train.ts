/**
 * One whole-encoder training step against PyTorch (Debian's python3-torch on OpenBLAS): 64
 * (anchor, positive) pairs of corpus texts (a seeded sample of the bundled entities' texts, their
 * real length mix), Universal Sentence Encoder lite with its pretrained weights, forward, MNRL
 * (scale 20) and backward to every parameter, 2 threads, the same weights and batch on both
 * sides. Ours packs the texts end to end; PyTorch pads them to the longest with an attention mask.
 * Reports the median step (the better of 2 rounds alternating between the sides; PyTorch in each of
 * its kernel configurations, bench/machine.ts), the ratio, the loss and gradient differences, and
 * the share of the FMA peak our products reach.
 * Needs: apt-get install python3-torch libopenblas0-openmp (its OpenBLAS threads; not needed by CI).
 * Usage: npm run bench:encoder-train (LABORSPACE_ISA=avx2 npm run bench:encoder-train for the AVX2 kernels)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { ingest } from '../src/data/ingest.js';
import { ensureUseLiteModel } from '../src/encoder/model-cache.js';
import { loadNativeUseLite, packTokens } from '../src/encoder/native-use-lite.js';
import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { probeFmaPeak, setThreads } from '../src/native.js';
import { Store } from '../src/store/index.js';
import { buildExamples, DEFAULT_KINDS } from '../src/train/examples.js';
import { randomIndex, seededRandom } from '../src/util/random.js';
import { describeMachine, machineLine, peerConfigs, requireTorchOnOpenBlas } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const PAIRS = 64;
const THREADS = 2;
const REPS = 3;
const ROUNDS = 2;
const COMPARE = ['head.weight', 'layer1.ffn1.weight', 'layer0.qkv.weight'];

requireTorchOnOpenBlas();

/** Multiply-adds of the products of one step: the dense layers per token and attention per text and head, forward (1x) and backward (2x). */
function productFlop(lengths: number[], dims: ReturnType<typeof loadNativeUseLite>['encoder']['dims']): number {
  const tokens = lengths.reduce((a, b) => a + b, 0);
  let perToken = 0;
  let attention = 0;
  for (const d of dims.layers) {
    perToken += d.widthIn * 3 * d.widthIn + d.widthIn * d.widthOut + (d.residualProjection ? d.widthIn * d.widthOut : 0) + 2 * d.widthOut * d.ffn;
    for (const T of lengths) attention += 2 * T * T * d.widthIn;
  }
  const head = lengths.length * dims.headOut * dims.layers[dims.layers.length - 1].widthOut;
  return 2 * 3 * (perToken * tokens + attention + head);
}

const work = process.env.BENCH_WORK ?? mkdtempSync(join(tmpdir(), "laborspace-bench-encoder-train-"));
try {
  setThreads(THREADS);
  const store = Store.open(':memory:');
  await ingest(store);
  const entities = store.entities();
  const all = entities.map((e) => e.text);
  // Pairs per epoch of the default training (20% of anchors held out).
  const examples = buildExamples(store, new Map(entities.map((e, i) => [e.ref, i])), DEFAULT_KINDS, 0.2, 42);
  const epochPairs = examples.train.reduce((n, set) => n + set.anchors.length, 0);
  store.close();
  const next = seededRandom(7);
  const texts = Array.from({ length: 2 * PAIRS }, () => all[randomIndex(next, all.length)]);
  const ort = await SentenceEncoder.load(ensureUseLiteModel(join(work, 'home')).dir);
  const ids = texts.map((t) => ort.tokenize(t));
  await ort.close();
  const { encoder, params, timing } = loadNativeUseLite();
  const batch = packTokens(ids);
  const lengths = Array.from({ length: 2 * PAIRS }, (_, i) => batch.offsets[i + 1] - batch.offsets[i]);
  writeFileSync(join(work, 'params.f32'), new Uint8Array(params.buffer));
  writeFileSync(join(work, 'timing.f32'), new Uint8Array(timing.buffer));
  writeFileSync(join(work, 'meta.json'), JSON.stringify({ dims: encoder.dims, layout: encoder.layout, tokens: Array.from(batch.tokens), offsets: Array.from(batch.offsets), scale: 20, reps: REPS, compare: COMPARE }));
  const runTorch = (env: NodeJS.ProcessEnv) =>
    JSON.parse(
      execFileSync('/usr/bin/python3', [join(here, 'encoder_train_torch.py'), work, String(THREADS)], { encoding: 'utf8', env }).trim().split('\n').pop()!,
    ) as { ms: number; loss: number; padded_tokens: number };
  const grad = new Float32Array(encoder.paramCount);
  const ourStep = () => {
    const times: number[] = [];
    let loss = 0;
    for (let r = 0; r < REPS + 1; r++) {
      const t0 = process.hrtime.bigint();
      loss = encoder.lossStep('mnrl', params, batch, grad, { scale: 20 }).loss;
      if (r >= 1) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return { ms: [...times].sort((a, b) => a - b)[times.length >> 1], loss };
  };
  let ours = { ms: Infinity, loss: 0 };
  let theirs = { ms: Infinity, loss: 0, padded_tokens: 0, kernels: '' };
  // The peak is probed in every round and the highest kept: the VM's speed swings from one minute
  // to the next, and a share against a peak taken in a slow minute would flatter ours.
  let peak = 0;
  for (let round = 0; round < ROUNDS; round++) {
    peak = Math.max(peak, probeFmaPeak(THREADS));
    for (const config of peerConfigs(THREADS)) {
      const t = runTorch(config.env);
      if (t.ms < theirs.ms) theirs = { ...t, kernels: config.label };
    }
    const o = ourStep();
    if (o.ms < ours.ms) ours = o;
  }
  const gradDiff = COMPARE.map((name) => {
    const torchGrad = new Float32Array(readFileSync(join(work, `${name}.torch.f32`)).buffer.slice(0));
    const mine = encoder.tensor(grad, name);
    let diff = 0, scale = 0;
    for (let j = 0; j < mine.length; j++) {
      diff = Math.max(diff, Math.abs(mine[j] - torchGrad[j]));
      scale = Math.max(scale, Math.abs(torchGrad[j]));
    }
    return { name, maxDiff: diff, maxAbs: scale };
  });
  const flop = productFlop(lengths, encoder.dims);
  peak = Math.max(peak, probeFmaPeak(THREADS));
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const table = new Table({ head: ['training step (64 pairs, MNRL)', 'laborspace ms', 'PyTorch ms', 'PyTorch kernels', 'speed-up', 'products GFLOP/s', 'share of FMA peak', '|loss diff|'] });
  table.push([`${tokens} tokens (${theirs.padded_tokens} padded)`, ours.ms.toFixed(0), theirs.ms.toFixed(0), theirs.kernels, `${(theirs.ms / ours.ms).toFixed(2)}x`, (flop / ours.ms / 1e6).toFixed(0), `${((flop / (ours.ms / 1e3) / peak) * 100).toFixed(0)}% of ${(peak / 1e9).toFixed(0)}`, Math.abs(ours.loss - theirs.loss).toExponential(1)]);
  const grads = new Table({ head: ['gradient', 'max |ours - PyTorch|', 'max |PyTorch|'] });
  for (const g of gradDiff) grads.push([g.name, g.maxDiff.toExponential(1), g.maxAbs.toExponential(1)]);
  console.log(`\nWhole-encoder training step, ${PAIRS} pairs of corpus texts, ${THREADS} threads, best of ${ROUNDS} alternating rounds of the median of ${REPS}`);
  console.log(machineLine(describeMachine()));
  console.log(table.toString());
  console.log(grads.toString());
  const epochMinutes = ((epochPairs / PAIRS) * ours.ms) / 60000;
  console.log(`One epoch of the default training (${epochPairs.toLocaleString('en-US')} pairs) at this step time: ${epochMinutes.toFixed(0)} min on ${THREADS} threads (PyTorch: ${(((epochPairs / PAIRS) * theirs.ms) / 60000).toFixed(0)} min).`);
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'encoder-train.json'), JSON.stringify({ machine: describeMachine(), pairs: PAIRS, threads: THREADS, tokens, paddedTokens: theirs.padded_tokens, epochPairs, ours, torch: theirs, productFlop: flop, fmaPeak: peak, gradDiff }, null, 2));
} finally {
  if (!process.env.BENCH_WORK) rmSync(work, { recursive: true, force: true });
}
