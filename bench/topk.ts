/**
 * Exact top-10 over 20,000 x 512 for 1,000 queries: the native core against a plain TypeScript
 * loop, hnswlib-node's BruteforceSearch and usearch's exactSearch (2 threads), single queries and
 * one batch. Each case runs in its own process, which first measures the machine's bounds: the
 * memory-bandwidth bound for single queries (database bytes / read bandwidth over the database
 * itself, so that probe and search see the same cache residency) and the compute bound for the batch (2 * n * dim FLOP per query / FMA peak).
 * Writes bench/out/topk.json.
 * Usage: npm run bench:topk
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { describeMachine, machineLine } from './machine.js';
import { DIM, K, N, QUERIES, RECALL_QUERIES, THREADS } from './topk-data.js';

const here = dirname(fileURLToPath(import.meta.url));

interface Round {
  qps: number;
  bandwidth: number;
  fmaPeak: number;
}

interface CaseResult {
  case: string;
  queries: number;
  rounds: Round[];
  indices: number[][];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function runCase(name: string): CaseResult {
  process.stderr.write(`running ${name} ...\n`);
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(here, 'topk-case.ts'), name], {
    encoding: 'utf8',
    env: { ...process.env, LABORSPACE_THREADS: String(THREADS) },
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as CaseResult;
}

function recall(got: number[][], exact: number[][]): number {
  let hits = 0;
  exact.forEach((row, i) => {
    const set = new Set(got[i]);
    hits += row.filter((j) => set.has(j)).length;
  });
  return hits / (exact.length * K);
}

const machine = describeMachine();
const results = Object.fromEntries(
  ['js-loop', 'hnswlib-bruteforce', 'usearch-single', 'native-single', 'usearch-batch', 'native-batch'].map((c) => [c, runCase(c)]),
);
const exact = results['js-loop'].indices;
const bandwidthBound = (r: Round) => r.bandwidth / (N * DIM * 4);
const computeBound = (r: Round) => r.fmaPeak / (2 * N * DIM);
const qps = (c: CaseResult) => median(c.rounds.map((r) => r.qps));

const rows = [
  { impl: 'plain TypeScript loop', mode: 'single', key: 'js-loop', peer: 'usearch-single', bound: bandwidthBound },
  { impl: 'hnswlib-node BruteforceSearch', mode: 'single', key: 'hnswlib-bruteforce', peer: 'usearch-single', bound: bandwidthBound },
  { impl: `usearch exactSearch (${THREADS} threads)`, mode: 'single', key: 'usearch-single', peer: 'usearch-single', bound: bandwidthBound },
  { impl: `laborspace native (${THREADS} threads)`, mode: 'single', key: 'native-single', peer: 'usearch-single', bound: bandwidthBound },
  { impl: `usearch exactSearch (${THREADS} threads)`, mode: `batch of ${QUERIES}`, key: 'usearch-batch', peer: 'usearch-batch', bound: computeBound },
  { impl: `laborspace native (${THREADS} threads)`, mode: `batch of ${QUERIES}`, key: 'native-batch', peer: 'usearch-batch', bound: computeBound },
];

const table = new Table({ head: ['implementation', 'queries', 'queries/s', 'vs usearch', 'bound q/s', 'share of bound', `recall@${K}`] });
const summary = rows.map((r) => {
  const res = results[r.key];
  const entry = {
    implementation: r.impl,
    mode: r.mode,
    qps: qps(res),
    vsUsearch: qps(res) / qps(results[r.peer]),
    bound: median(res.rounds.map(r.bound)),
    // Each round against the bounds measured just before it, then the median.
    shareOfBound: median(res.rounds.map((round) => round.qps / r.bound(round))),
    recall: recall(res.indices, exact),
  };
  table.push([
    entry.implementation,
    entry.mode,
    entry.qps.toFixed(0),
    `${entry.vsUsearch.toFixed(2)}x`,
    entry.bound.toFixed(0),
    `${(100 * entry.shareOfBound).toFixed(0)}%`,
    entry.recall.toFixed(3),
  ]);
  return entry;
});

console.log(`\nExact top-${K}, ${N} x ${DIM} float32 (unit rows, inner product), ${QUERIES} queries, recall on ${RECALL_QUERIES}; median of rounds`);
console.log(machineLine(machine));
const range = (values: number[]) => `${(Math.min(...values) / 1e9).toFixed(0)}-${(Math.max(...values) / 1e9).toFixed(0)}`;
const all = Object.values(results).flatMap((c) => c.rounds);
console.log(
  `measured per round: read bandwidth ${range(all.map((c) => c.bandwidth))} GB/s over the ${((N * DIM * 4) / 1e6).toFixed(0)} MB database, ` +
    `FMA peak ${range(all.map((c) => c.fmaPeak))} GFLOP/s (${THREADS} threads)`,
);
console.log(table.toString());

const outDir = join(here, 'out');
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'topk.json'),
  JSON.stringify({ machine, n: N, dim: DIM, queries: QUERIES, k: K, threads: THREADS, results: summary }, null, 2),
);
