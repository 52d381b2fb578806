/**
 * Cross-type query latency: top-10 from each of the four types for 1,000 entity vectors (seeded),
 * in process, with the indices `laborspace build` chose against each method alone on the same
 * vectors: the exact native fp32 scan, int8 codes of the full dimension, and hnswlib (the peer:
 * HNSW, M 16, the smallest ef reaching recall 0.99), plus recall@10 of each and the latency of a
 * free-text query (which encodes the text first). Without --home, builds the default space into a
 * cached bench home first. The other methods' indices go to a temporary folder. Writes
 * bench/out/query.json.
 * Usage: npm run bench:query [-- --home DIR]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { build } from '../src/build.js';
import { SpaceIndex, type IndexOptions } from '../src/index/space-index.js';
import { LaborSpace } from '../src/space.js';
import { ENTITY_TYPES } from '../src/store/index.js';
import { randomIndex, seededRandom } from '../src/util/random.js';
import { describeMachine, machineLine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const homeArg = process.argv.includes('--home') ? process.argv[process.argv.indexOf('--home') + 1] : undefined;
const home = homeArg ?? join(tmpdir(), 'laborspace-bench-space');
const QUERIES = 1000;

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))];

function ms(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

if (!homeArg) await build(home, { onNote: (m) => process.stderr.write(`${m}\n`) });
const space = await LaborSpace.open(home);
const scratch = mkdtempSync(join(tmpdir(), 'laborspace-bench-query-'));
const others: [string, IndexOptions][] = [
  ['exact native fp32 scan of every type', { method: 'exact' }],
  ['int8 codes of all 512 dimensions, re-scored (every type)', { method: 'int8', ranks: [Infinity] }],
  ['hnswlib (peer), HNSW of every type', { method: 'hnsw' }],
];
const indices = others.map(([label, options], i) => [label, SpaceIndex.open(space.store, space.modelId, join(scratch, String(i)), options)] as const);
const exact = indices[0][1];
const all = space.store.vectors(space.modelId);
const next = seededRandom(5);
const queries = Array.from({ length: QUERIES }, () => {
  const row = randomIndex(next, all.refs.length);
  return all.matrix.slice(row * all.dim, (row + 1) * all.dim);
});

const timing = (index: SpaceIndex) => queries.map((q) => ms(() => ENTITY_TYPES.forEach((t) => index.search(t, q, 10))));
const recall = (index: SpaceIndex) => {
  let hits = 0;
  let total = 0;
  for (const q of queries)
    for (const t of ENTITY_TYPES) {
      const truth = exact.search(t, q, 10).rows;
      const got = new Set(index.search(t, q, 10).rows);
      hits += truth.filter((r) => got.has(r)).length;
      total += truth.length;
    }
  return hits / total;
};
const methodsOf = (index: SpaceIndex) =>
  Object.entries(index.manifest.types).map(([t, i]) => `${t}: ${i.method}${i.rank ? ` ${i.rank} dims` : ''}${i.ef ? ` (ef ${i.ef})` : ''}`).join(', ');
const rows = [[`chosen indices (${methodsOf(space.index)})`, space.index] as const, ...indices].map(([label, index]) => {
  timing(index); // warm-up
  const times = timing(index);
  return { label, p50: percentile(times, 0.5), p99: percentile(times, 0.99), recall: recall(index) };
});
const text = [];
for (const phrase of ['registered nurse', 'steel mill', 'machine learning engineer', 'retail bank', 'truck driver']) {
  const t0 = process.hrtime.bigint();
  await space.near(phrase, { k: 10 });
  text.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
await space.close();

rmSync(scratch, { recursive: true, force: true });
const table = new Table({ head: ['search', 'p50 ms', 'p99 ms', 'recall@10', 'p50 / chosen'] });
for (const r of rows) table.push([r.label, r.p50.toFixed(3), r.p99.toFixed(3), r.recall.toFixed(4), (r.p50 / rows[0].p50).toFixed(2)]);
console.log(`\nCross-type query: top-10 of each of 4 types (${all.refs.length} vectors), ${QUERIES} entity vectors as queries, in process`);
console.log(machineLine(describeMachine()));
console.log(table.toString());
console.log(`free-text query (encode + search), median of 5: ${percentile(text, 0.5).toFixed(2)} ms`);
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(
  join(here, 'out', 'query.json'),
  JSON.stringify({ machine: describeMachine(), vectors: all.refs.length, queries: QUERIES, manifest: space.index.manifest, rows, textMs: text }, null, 2),
);
