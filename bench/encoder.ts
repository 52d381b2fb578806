/**
 * Encoding throughput on real corpus texts (a seeded sample of the bundled entities' texts, mixed
 * lengths): laborspace's encoder against transformers.js (@huggingface/transformers) running the
 * same converted ONNX file with the same threads and batch size, each in its own process, plus the
 * cosine between their outputs and the fp32 compute bound (FLOP per token of the graph / measured
 * FMA peak). The int8 model is compared with the fp32 one: smallest cosine, and how many of each
 * text's 10 nearest texts (among the sample) it keeps. Writes bench/out/encoder.json.
 * Usage: npm run bench:encoder [-- --texts 2000]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { ingest } from '../src/data/ingest.js';
import { ensureUseLiteModel } from '../src/encoder/model-cache.js';
import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { probeFmaPeak, topk } from '../src/native.js';
import { Store } from '../src/store/index.js';
import { randomIndex, seededRandom } from '../src/util/random.js';
import { describeMachine, machineLine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const THREADS = 2;
const BATCH = 32;
const count = Number(process.argv[process.argv.indexOf('--texts') + 1]) || 2000;

/** Multiply-adds per token of the graph, x2 for FLOP: layer 0 (256 -> QKV 768, out 512, residual 512), layer 1 (512 -> 1536, out 512), FFNs, tanh head per text is ignored. */
const FLOP_PER_TOKEN = 2 * (256 * 768 + 256 * 512 + 256 * 512 + 512 * 1536 + 2 * 512 * 1536 + 512 * 512 + 2 * 512 * 1536);

const work = mkdtempSync(join(tmpdir(), 'laborspace-bench-encoder-'));
try {
  const store = Store.open(':memory:');
  await ingest(store);
  const all = store.entities().map((e) => e.text);
  store.close();
  const next = seededRandom(42);
  const texts = Array.from({ length: count }, () => all[randomIndex(next, all.length)]);
  const model = ensureUseLiteModel(join(work, 'home'));
  const encoder = await SentenceEncoder.load(model.dir);
  const tokens = texts.reduce((n, t) => n + Math.min(encoder.tokenize(t).length, encoder.maxTokens), 0);
  await encoder.close();
  writeFileSync(join(work, 'texts.json'), JSON.stringify(texts));

  const run = (name: string) => {
    process.stderr.write(`running ${name} ...\n`);
    execFileSync(process.execPath, ['--import', 'tsx', join(here, 'encoder-case.ts'), name, model.dir, work, String(THREADS), String(BATCH)], { stdio: ['ignore', 'ignore', 'inherit'] });
    return JSON.parse(readFileSync(join(work, `${name}.json`), 'utf8')) as { seconds: number };
  };
  const peer = run('transformers');
  const ours = run('laborspace');
  const int8 = run('laborspace-int8');
  const load = (name: string) => new Float32Array(readFileSync(join(work, `${name}.f32`)).buffer.slice(0));
  const [a, b, c] = ['transformers', 'laborspace', 'laborspace-int8'].map(load);
  const minCosine = (x: Float32Array, y: Float32Array) => {
    let min = 1;
    for (let i = 0; i < texts.length; i++) {
      let dot = 0;
      for (let d = 0; d < 512; d++) dot += x[i * 512 + d] * y[i * 512 + d];
      min = Math.min(min, dot);
    }
    return min;
  };
  const minCos = minCosine(a, b);
  const int8Cos = minCosine(b, c);
  // Retrieval kept: each of 200 texts' 10 nearest among the sample, fp32 vs int8.
  const neighbours = (v: Float32Array, i: number) =>
    Array.from(topk(v.subarray(i * 512, (i + 1) * 512), v, 512, { k: 11, metric: 'dot' }).indices).filter((j) => j !== i).slice(0, 10);
  let kept = 0;
  for (let i = 0; i < 200; i++) {
    const truth = new Set(neighbours(b, i));
    kept += neighbours(c, i).filter((j) => truth.has(j)).length;
  }
  const int8Recall = kept / 2000;
  const peak = probeFmaPeak(THREADS);
  const bound = peak / FLOP_PER_TOKEN / (tokens / texts.length);
  const rows = [
    { name: `transformers.js ${'@huggingface/transformers'} (batch ${BATCH}, input order)`, tps: texts.length / peer.seconds },
    { name: `laborspace (batch ${BATCH}, sorted by length)`, tps: texts.length / ours.seconds },
    { name: `laborspace int8 (batch ${BATCH}, sorted by length)`, tps: texts.length / int8.seconds },
  ];
  const table = new Table({ head: ['encoder', 'texts/s', 'tokens/s', 'vs transformers.js', 'share of fp32 bound'] });
  for (const r of rows) table.push([r.name, r.tps.toFixed(0), ((r.tps * tokens) / texts.length).toFixed(0), `${(r.tps / rows[0].tps).toFixed(2)}x`, `${((100 * r.tps) / bound).toFixed(0)}%`]);
  console.log(`\nEncoding ${texts.length} corpus texts (${(tokens / texts.length).toFixed(1)} tokens on average after truncation to 128), ${THREADS} threads, same ONNX file`);
  console.log(machineLine(describeMachine()));
  console.log(`fp32 bound: ${(FLOP_PER_TOKEN / 1e6).toFixed(1)} MFLOP per token at ${(peak / 1e9).toFixed(0)} GFLOP/s = ${bound.toFixed(0)} texts/s; smallest cosine between the two outputs: ${minCos.toFixed(6)}`);
  console.log(table.toString());
  console.log(`int8 vs fp32: smallest cosine ${int8Cos.toFixed(4)}; 10 nearest texts kept ${(100 * int8Recall).toFixed(1)}% (200 queries among the sample)`);
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'encoder.json'), JSON.stringify({ machine: describeMachine(), texts: texts.length, tokens, threads: THREADS, batch: BATCH, minCosine: minCos, int8MinCosine: int8Cos, int8NeighboursKept: int8Recall, boundTextsPerSecond: bound, rows }, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
