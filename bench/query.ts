/**
 * Cross-type query latency: top-10 from each of the four types for 1,000 entity vectors (seeded),
 * in process, with the indices `laborspace build` chose (HNSW where it is faster at recall >= 0.99)
 * against exact native scans of every type, plus recall@10 of the chosen indices and the latency of
 * a free-text query (which encodes the text first). Builds the space into a cached bench home
 * first. Writes bench/out/query.json.
 * Usage: npm run bench:query
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { build } from '../src/build.js';
import { SpaceIndex } from '../src/index/space-index.js';
import { BASE_MODEL_ID } from '../src/active-model.js';
import { LaborSpace } from '../src/space.js';
import { ENTITY_TYPES } from '../src/store/index.js';
import { randomIndex, seededRandom } from '../src/util/random.js';
import { describeMachine, machineLine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const home = join(tmpdir(), 'laborspace-bench-space');
const QUERIES = 1000;

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))];

function ms(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

await build(home, { onNote: (m) => process.stderr.write(`${m}\n`) });
const space = await LaborSpace.open(home);
const exact = SpaceIndex.open(space.store, BASE_MODEL_ID, join(home, 'indices-exact'), { method: 'exact' });
const all = space.store.vectors(BASE_MODEL_ID);
const next = seededRandom(5);
const queries = Array.from({ length: QUERIES }, () => {
  const row = randomIndex(next, all.refs.length);
  return all.matrix.slice(row * all.dim, (row + 1) * all.dim);
});

const timing = (index: SpaceIndex) => queries.map((q) => ms(() => ENTITY_TYPES.forEach((t) => index.search(t, q, 10))));
timing(space.index); // warm-up
const chosen = timing(space.index);
const scans = timing(exact);
let hits = 0;
let total = 0;
for (const q of queries)
  for (const t of ENTITY_TYPES) {
    const truth = exact.search(t, q, 10).rows;
    const got = new Set(space.index.search(t, q, 10).rows);
    hits += truth.filter((r) => got.has(r)).length;
    total += truth.length;
  }
const text = [];
for (const phrase of ['registered nurse', 'steel mill', 'machine learning engineer', 'retail bank', 'truck driver']) {
  const t0 = process.hrtime.bigint();
  await space.near(phrase, { k: 10 });
  text.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
await space.close();

const methods = Object.entries(space.index.manifest.types).map(([t, i]) => `${t}: ${i.method}${i.ef ? ` (ef ${i.ef})` : ''}`).join(', ');
const table = new Table({ head: ['search', 'p50 ms', 'p99 ms', 'recall@10'] });
table.push([`chosen indices (${methods})`, percentile(chosen, 0.5).toFixed(3), percentile(chosen, 0.99).toFixed(3), (hits / total).toFixed(4)]);
table.push(['exact native scan of every type', percentile(scans, 0.5).toFixed(3), percentile(scans, 0.99).toFixed(3), '1.0000']);
console.log(`\nCross-type query: top-10 of each of 4 types (${all.refs.length} vectors), ${QUERIES} entity vectors as queries, in process`);
console.log(machineLine(describeMachine()));
console.log(table.toString());
console.log(`free-text query (encode + search), median of 5: ${percentile(text, 0.5).toFixed(2)} ms`);
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(
  join(here, 'out', 'query.json'),
  JSON.stringify({ machine: describeMachine(), vectors: all.refs.length, queries: QUERIES, manifest: space.index.manifest, chosen: { p50: percentile(chosen, 0.5), p99: percentile(chosen, 0.99), recall: hits / total }, exact: { p50: percentile(scans, 0.5), p99: percentile(scans, 0.99) }, textMs: text }, null, 2),
);
