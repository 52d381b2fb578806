/**
 * One case of the exact top-k benchmark, run in its own process by bench/topk.ts so that no
 * case inherits another's caches, heap or threads. Prints one JSON line.
 * Usage: node --import tsx bench/topk-case.ts CASE
 */
import { createRequire } from 'node:module';

import { probeBandwidth, probeFmaPeak, topk } from '../src/native.js';
import { topkRef } from '../src/reference.js';
import { benchData, K, N, DIM, RECALL_QUERIES, THREADS } from './topk-data.js';

const require = createRequire(import.meta.url);

interface CaseResult {
  /** Queries answered per second. */
  qps: number;
  queries: number;
  /** Indices of the first RECALL_QUERIES queries' results, for recall against the exact answer. */
  indices?: number[][];
  [extra: string]: unknown;
}

function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Best of `reps` runs: the least disturbed by the rest of the machine. */
function best(reps: number, fn: () => void): number {
  let t = Infinity;
  for (let r = 0; r < reps; r++) t = Math.min(t, timeIt(fn));
  return t;
}

function rows(indices: ArrayLike<number | bigint>, count: number): number[][] {
  return Array.from({ length: count }, (_, i) => Array.from({ length: K }, (_, r) => Number(indices[i * K + r])));
}

const { database, queries } = benchData();
const M = queries.length / DIM;
const single = (i: number) => queries.subarray(i * DIM, (i + 1) * DIM);

const cases: Record<string, () => CaseResult> = {
  'native-batch'() {
    let r = topk(queries, database, DIM, { k: K, metric: 'dot' });
    const t = best(5, () => (r = topk(queries, database, DIM, { k: K, metric: 'dot' })));
    return { qps: M / t, queries: M, indices: rows(r.indices, RECALL_QUERIES) };
  },
  'native-single'() {
    const out: number[][] = [];
    for (let i = 0; i < 50; i++) topk(single(i), database, DIM, { k: K, metric: 'dot' }); // warm-up
    const t = best(3, () => {
      out.length = 0;
      for (let i = 0; i < M; i++) {
        const r = topk(single(i), database, DIM, { k: K, metric: 'dot' });
        if (i < RECALL_QUERIES) out.push(Array.from(r.indices));
      }
    });
    return { qps: M / t, queries: M, indices: out };
  },
  'usearch-batch'() {
    const { exactSearch } = require('usearch');
    let r = exactSearch(database, queries, DIM, K, 'ip', THREADS);
    const t = best(3, () => (r = exactSearch(database, queries, DIM, K, 'ip', THREADS)));
    return { qps: M / t, queries: M, indices: rows(r.keys, RECALL_QUERIES) };
  },
  'usearch-single'() {
    const { exactSearch } = require('usearch');
    const count = 300;
    const out: number[][] = [];
    const t = best(3, () => {
      out.length = 0;
      for (let i = 0; i < count; i++) {
        const r = exactSearch(database, single(i), DIM, K, 'ip', THREADS);
        if (i < RECALL_QUERIES) out.push(Array.from(r.keys as BigUint64Array, Number));
      }
    });
    return { qps: count / t, queries: count, indices: out };
  },
  'hnswlib-bruteforce'() {
    const { BruteforceSearch } = require('hnswlib-node');
    const index = new BruteforceSearch('ip', DIM);
    index.initIndex(N);
    for (let j = 0; j < N; j++) index.addPoint(Array.from(database.subarray(j * DIM, (j + 1) * DIM)), j);
    const count = 300;
    const plain = Array.from({ length: count }, (_, i) => Array.from(single(i)));
    const out: number[][] = [];
    const t = best(3, () => {
      out.length = 0;
      for (let i = 0; i < count; i++) {
        const r = index.searchKnn(plain[i], K);
        if (i < RECALL_QUERIES) out.push(r.neighbors);
      }
    });
    return { qps: count / t, queries: count, indices: out };
  },
  'js-loop'() {
    const count = RECALL_QUERIES;
    let r = topkRef(queries.subarray(0, count * DIM), database, DIM, K, 'dot');
    const t = timeIt(() => (r = topkRef(queries.subarray(0, count * DIM), database, DIM, K, 'dot')));
    return { qps: count / t, queries: count, indices: r.indices };
  },
  probes() {
    const bytes = database.byteLength;
    const bandwidth = Math.max(...[0, 1, 2].map(() => probeBandwidth(bytes, THREADS)));
    return { qps: 0, queries: 0, bandwidth, fmaPeak: probeFmaPeak(THREADS) };
  },
};

const name = process.argv[2];
const run = cases[name];
if (!run) {
  console.error(`unknown case ${name}; one of: ${Object.keys(cases).join(', ')}`);
  process.exit(2);
}
console.log(JSON.stringify({ case: name, ...run() }));
