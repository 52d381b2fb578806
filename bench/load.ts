/**
 * Load test of `laborspace serve` on loopback (an open-loop generator, bench/open-loop.ts: requests
 * evenly spaced at the asked rate, latency counted from when each was due): p50/p99 and errors for
 * `GET /v1/near` on references (cycling through 500 occupations, industries and skills) and on
 * free text (500 postings-like phrases), each at fixed request rates for a fixed time, from 2 and
 * from 16 connections. The server
 * runs in its own process (the built CLI), the load generator in this one.
 * Target (issue 7): p99 under 10 ms at 500 requests/s for references, no errors.
 * The mixed run (issue 11): the same reference queries at 200 requests/s from 2 connections while
 * 8 other connections each send heavy requests back to back (axis with 1,000 bootstrap
 * resamples, score of 1,000 texts, shock); target: near's p99 under 20 ms.
 * `--workers N` runs `serve --workers N` (default 1: one process); `--references-only` runs only the
 * reference rows from 16 connections (issue 12: 1 process against N).
 * Each row also gives the CPU time the hypervisor stole meanwhile (/proc/stat): on a shared VM a
 * second of 30% steal stalls every thread at once, and the row's tail says more of the VM than of the server.
 * Needs a built space (npx laborspace build) and the built package (npm run build).
 * Writes bench/out/load-workers-N.json.
 * Usage: npm run bench:load [-- --home DIR --seconds 10 --mixed-only | --references-only] [--workers N]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { defaultHome } from '../src/home.js';
import { openHomeStore } from '../src/home.js';
import { randomIndex, seededRandom } from '../src/util/random.js';
import { describeMachine, machineLine, stealCell, stealMeter } from './machine.js';
import { openLoop } from './open-loop.js';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const home = arg('--home', defaultHome());
const seconds = Number(arg('--seconds', '10'));
const mixedOnly = process.argv.includes('--mixed-only');
const referencesOnly = process.argv.includes('--references-only');
const workers = arg('--workers', '1');

const store = openHomeStore(home);
const next = seededRandom(3);
const sample = <T>(list: T[], n: number) => Array.from({ length: n }, () => list[randomIndex(next, list.length)]);
const refs = sample(store.entities().filter((e) => e.type !== 'firm').map((e) => e.ref), 500);
const titles = store.entities({ type: 'occupation' }).map((e) => e.title);
const skills = store.entities({ type: 'skill' }).map((e) => e.title);
const texts = Array.from({ length: 500 }, () => `${sample(titles, 1)[0]} with ${sample(skills, 1)[0]}`);
store.close();

const server = spawn(process.execPath, [join(here, '..', 'bin', 'laborspace.js'), '--home', home, 'serve', '--port', '0', '--workers', workers], { stdio: ['ignore', 'ignore', 'pipe'] });
const base = await new Promise<string>((resolve, reject) => {
  let seen = '';
  server.stderr!.on('data', (d: Buffer) => {
    seen += d.toString();
    const m = /serving on (http:\/\/[^\s:]+:\d+)/.exec(seen);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`server exited (${code}): ${seen}`)));
});

// The analysis threads open their spaces after the server starts serving: wait for them, so that
// their start-up is not timed as the first row's load.
for (let ready = false; !ready; await new Promise((r) => setTimeout(r, 200))) {
  const health = (await (await fetch(`${base}/health`)).json()) as { analysisThreads?: { threads: number; ready: number } };
  ready = health.analysisThreads !== undefined && health.analysisThreads.ready === health.analysisThreads.threads;
}

/** WARM_UP_SECONDS of the same load, not timed (the encoder's first runs, V8's compiling, the indices' pages), then the row. */
const WARM_UP_SECONDS = 2;
/** One timed row of the open-loop load, with the hypervisor's steal meanwhile. */
async function measured(paths: string[], rate: number, connections: number) {
  const steal = stealMeter();
  const result = await openLoop(base, paths, rate, connections, seconds);
  return { ...result, stealPercent: steal() };
}
async function load(paths: string[], rate: number, connections: number) {
  await openLoop(base, paths, rate, connections, WARM_UP_SECONDS);
  return measured(paths, rate, connections);
}

const near = (q: string) => `/v1/near?q=${encodeURIComponent(q)}&k=10`;
const table = new Table({ head: ['GET /v1/near', 'connections', 'target req/s', 'achieved req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'steal %'] });
const rows: Record<string, unknown>[] = [];
const mixedRows: Record<string, unknown>[] = [];

const HEAVY: Record<string, { path: string; body: unknown }> = {
  'axis, 1,000 resamples': { path: '/v1/axis', body: { name: 'manufacturing-healthcare', bootstrap: 1000 } },
  'score, 1,000 texts': { path: '/v1/score', body: { texts: texts.slice(0, 500).concat(texts.slice(0, 500)) } },
  shock: { path: '/v1/shock', body: { direction: '"artificial intelligence" + "machine learning"' } },
};

/** `clients` loops, each sending the heavy requests of `kinds` in turn, back to back, until stopped. */
function heavyLoad(kinds: string[], clients: number) {
  let running = true;
  const done: Record<string, number[]> = Object.fromEntries(kinds.map((k) => [k, []]));
  let failed = 0;
  const loops = Array.from({ length: clients }, async (_, c) => {
    for (let i = c; running; i++) {
      const kind = kinds[i % kinds.length];
      const t0 = performance.now();
      // A timeout (503) or a connection the server dropped counts as failed.
      const ok = await fetch(base + HEAVY[kind].path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(HEAVY[kind].body) })
        .then(async (r) => (await r.arrayBuffer(), r.ok))
        .catch(() => false);
      if (ok) done[kind].push(performance.now() - t0);
      else failed++;
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
    return { done, failed };
  };
}

const mixed = new Table({ head: ['heavy requests (8 connections)', 'near req/s', 'near p50 ms', 'near p99 ms', 'near max ms', 'near errors', 'heavy done', 'heavy mean s', 'heavy failed', 'steal %'] });
try {
  for (const kinds of referencesOnly ? [] : [['axis, 1,000 resamples'], ['score, 1,000 texts'], ['shock'], Object.keys(HEAVY)]) {
    const paths = refs.map(near);
    await openLoop(base, paths, 200, 2, WARM_UP_SECONDS);
    const stop = heavyLoad(kinds, 8);
    const r = await measured(paths, 200, 2);
    const { done, failed } = await stop();
    const times = Object.values(done).flat();
    const label = kinds.length > 1 ? 'all three in turn' : kinds[0];
    const heavyMeanS = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length) / 1000;
    mixed.push([label, Math.round(r.achieved), r.p50, r.p99, r.max, r.errors + r.non2xx, times.length, heavyMeanS.toFixed(2), failed, stealCell(r.stealPercent)]);
    mixedRows.push({ heavy: label, near: r, heavyDone: times.length, heavyMeanS, heavyFailed: failed });
  }
  if (!mixedOnly)
  // From 2 connections a request that finds both busy waits; from 16 it rarely does.
  for (const connections of referencesOnly ? [16] : [2, 16])
  for (const [label, paths, rate] of [
    ['references', refs.map(near), 500],
    ['references', refs.map(near), 1000],
    ...(referencesOnly ? [] : [['free text', texts.map(near), 100], ['free text', texts.map(near), 200]] as const),
  ] as const) {
    const r = await load([...paths], rate, connections);
    table.push([label, connections, rate, Math.round(r.achieved), r.p50, r.p90, r.p99, r.max, r.errors, r.non2xx, stealCell(r.stealPercent)]);
    rows.push({ label, connections, rate, ...r });
  }
} finally {
  server.kill('SIGTERM');
}
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', `load-workers-${workers}.json`), JSON.stringify({ machine: describeMachine(), seconds, workers, references: rows, mixed: mixedRows }, null, 2));
console.log(`\nLoad test on loopback of serve --workers ${workers}, ${seconds} s per row, all four types per query (k = 10)`);
console.log(machineLine(describeMachine()));
if (!mixedOnly) console.log(table.toString());
if (!referencesOnly) {
  console.log('\nGET /v1/near on references at 200 req/s from 2 connections, while 8 others send heavy requests back to back:');
  console.log(mixed.toString());
}
