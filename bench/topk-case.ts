/**
 * One case of the exact top-k benchmark, run in its own process by bench/topk.ts so that no
 * case inherits another's caches, heap or threads. Prints one JSON line.
 * Usage: node --import tsx bench/topk-case.ts CASE
 *
 * Memory bandwidth and FMA throughput on this VM move with what its neighbours do, so each timed
 * round is paired with a fresh measurement of the machine's bounds taken just before it; the
 * orchestrator compares each round with its own bounds.
 */
import { createRequire } from 'node:module';

import { probeBandwidth, probeFmaPeak, topk } from '../src/native.js';
import { topkRef } from '../src/reference.js';
import { benchData, DIM, K, N, RECALL_QUERIES, THREADS } from './topk-data.js';

const require = createRequire(import.meta.url);
const ROUNDS = 5;

interface Workload {
  /** Queries one round answers. */
  queries: number;
  /** Answers them; returns the indices of the first RECALL_QUERIES queries. */
  run(): number[][];
}

function rows(indices: ArrayLike<number | bigint>, count: number): number[][] {
  return Array.from({ length: count }, (_, i) => Array.from({ length: K }, (_, r) => Number(indices[i * K + r])));
}

const { database, queries } = benchData();
const M = queries.length / DIM;
const single = (i: number) => queries.subarray(i * DIM, (i + 1) * DIM);

const cases: Record<string, () => Workload> = {
  'native-batch': () => ({
    queries: M,
    run: () => rows(topk(queries, database, DIM, { k: K, metric: 'dot' }).indices, RECALL_QUERIES),
  }),
  'native-single': () => ({
    queries: M,
    run: () => {
      const out: number[][] = [];
      for (let i = 0; i < M; i++) {
        const r = topk(single(i), database, DIM, { k: K, metric: 'dot' });
        if (i < RECALL_QUERIES) out.push(Array.from(r.indices));
      }
      return out;
    },
  }),
  'usearch-batch': () => {
    const { exactSearch } = require('usearch');
    return { queries: M, run: () => rows(exactSearch(database, queries, DIM, K, 'ip', THREADS).keys, RECALL_QUERIES) };
  },
  'usearch-single': () => {
    const { exactSearch } = require('usearch');
    const count = 300;
    // usearch reads a subarray view from the start of its buffer: hand it copies.
    const copies = Array.from({ length: count }, (_, i) => single(i).slice());
    return {
      queries: count,
      run: () => copies.map((q) => Array.from(exactSearch(database, q, DIM, K, 'ip', THREADS).keys as BigUint64Array, Number)).slice(0, RECALL_QUERIES),
    };
  },
  'hnswlib-bruteforce': () => {
    const { BruteforceSearch } = require('hnswlib-node');
    const index = new BruteforceSearch('ip', DIM);
    index.initIndex(N);
    for (let j = 0; j < N; j++) index.addPoint(Array.from(database.subarray(j * DIM, (j + 1) * DIM)), j);
    const plain = Array.from({ length: 300 }, (_, i) => Array.from(single(i)));
    return { queries: plain.length, run: () => plain.map((q) => index.searchKnn(q, K).neighbors as number[]).slice(0, RECALL_QUERIES) };
  },
  'js-loop': () => ({
    queries: RECALL_QUERIES,
    run: () => topkRef(queries.subarray(0, RECALL_QUERIES * DIM), database, DIM, K, 'dot').indices,
  }),
};

const name = process.argv[2];
const make = cases[name];
if (!make) {
  console.error(`unknown case ${name}; one of: ${Object.keys(cases).join(', ')}`);
  process.exit(2);
}
const workload = make();
let indices = workload.run(); // warm-up
const rounds: { qps: number; bandwidth: number; fmaPeak: number }[] = [];
for (let r = 0; r < (name === 'js-loop' ? 1 : ROUNDS); r++) {
  const bandwidth = probeBandwidth(database, THREADS);
  const fmaPeak = probeFmaPeak(THREADS);
  const t0 = process.hrtime.bigint();
  indices = workload.run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rounds.push({ qps: workload.queries / seconds, bandwidth, fmaPeak });
}
console.log(JSON.stringify({ case: name, queries: workload.queries, rounds, indices }));
