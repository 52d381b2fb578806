/**
 * Distributed scoring (issue 12): N synthetic postings (default 100,000) scored in three set-ups,
 * each process of its own (the built CLI): the single process on 2 threads; a coordinator and one
 * worker of 2 threads; a coordinator and two workers of 1 thread, on a redis-server started here.
 * Reports rows/s, the queue's overhead against the single process, the coordinator's CPU per
 * row, and BullMQ/Redis's cost per job (a no-op worker returning a real chunk's result, with the
 * redis-server's own CPU time), from which it projects 10, 100 and 1,000 workers.
 * Needs a built space (npx laborspace build; LABORSPACE_HOME or --home), the built package (npm
 * run build) and redis-server (apt-get install redis-server).
 * The set-ups alternate over `--rounds` rounds (default 2) and each one's best round is compared,
 * with the hypervisor's steal time of every round.
 * Usage: npm run bench:scale [-- --rows 100000 --rounds 2 --chunk-rows 1024 --jobs 300 --home DIR]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Queue, QueueEvents, Worker } from 'bullmq';
import Table from 'cli-table3';

import { defaultHome } from '../src/home.js';
import { type ChunkJob, type ChunkResult, SCORE_QUEUE } from '../src/queue/connection.js';
import { LaborSpace } from '../src/space.js';
import { describeMachine, machineLine, stealCell, stealMeter } from './machine.js';
import { writePostings } from './postings.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'laborspace.js');
const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const rows = Number(arg('--rows', '100000'));
const chunkRows = Number(arg('--chunk-rows', '1024'));
const jobs = Number(arg('--jobs', '300'));
const rounds = Number(arg('--rounds', '2'));
const home = arg('--home', defaultHome());

const work = mkdtempSync(join(tmpdir(), 'laborspace-bench-scale-'));
const input = join(work, 'postings.csv');
const space = await LaborSpace.open(home);
writePostings(space, input, rows);
await space.close();

const port = await new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', work, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const url = `redis://127.0.0.1:${port}/0`;
await new Promise((r) => setTimeout(r, 500));

/** CPU seconds (user + system) a process has used so far, from /proc. */
const cpuOf = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
};

/** A CLI command to its end, with its --json answer and its CPU seconds (bash's `times`). */
function timed(args: string[]): Promise<{ summary: { rows: number; rowsPerSecond: number; seconds: number }; cpu: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', '"$@"; code=$?; times >&2; exit $code', 'bash', process.execPath, bin, '--home', home, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`laborspace ${args.join(' ')} failed: ${err}`));
      const [user, sys] = err.trim().split('\n').pop()!.split(' ').map((t) => {
        const [, m, s] = /(\d+)m([\d.]+)s/.exec(t)!;
        return Number(m) * 60 + Number(s);
      });
      resolve({ summary: JSON.parse(out), cpu: user + sys });
    });
  });
}

/** `count` workers of `threads` threads each, once they are connected. */
async function workers(count: number, threads: number) {
  const children = Array.from({ length: count }, () => spawn(process.execPath, [bin, '--home', home, 'worker', '--queue', url, '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'pipe'] }));
  await Promise.all(children.map((c) => new Promise<void>((resolve, reject) => {
    let err = '';
    c.stderr!.on('data', (d: Buffer) => {
      err += d;
      if (/worker \S+ on redis:/.test(err)) resolve();
    });
    c.once('exit', () => reject(new Error(`worker exited: ${err}`)));
  })));
  return async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null)))));
  };
}

const score = (out: string, extra: string[] = []) => ['score', '--input', input, '--text-column', 'text', '--id-column', 'id', '--out', join(work, out), ...extra];
interface SetupRun { rate: number; seconds: number; cpu: number; steal: number | undefined }
const SETUPS = [
  { setup: 'single process, 2 threads', count: 0, threads: 2 },
  { setup: 'coordinator + 1 worker of 2 threads', count: 1, threads: 2 },
  { setup: 'coordinator + 2 workers of 1 thread', count: 2, threads: 1 },
];
const runsOf: SetupRun[][] = SETUPS.map(() => []);
try {
  // The coordinator's fixed cost (opening the space, connecting), from a run of one chunk, so that
  // its CPU per row is the part that grows with the input.
  const small = join(work, 'small.csv');
  writeFileSync(small, `${readFileSync(input, 'utf8').split('\n').slice(0, 11).join('\n')}\n`);
  let fixedCpu = 0;
  // Rounds alternate the set-ups, so that a slower minute of a shared VM falls on each in turn;
  // each set-up's best round is compared.
  for (let round = 1; round <= rounds; round++) {
    for (const [s, { setup, count, threads }] of SETUPS.entries()) {
      process.stderr.write(`round ${round} of ${rounds}: ${setup}, ${rows} rows...\n`);
      const steal = stealMeter();
      let run: Awaited<ReturnType<typeof timed>>;
      if (!count) run = await timed(score('single.jsonl'));
      else {
        const stop = await workers(count, threads);
        if (!fixedCpu) fixedCpu = (await timed(['score', '--input', small, '--text-column', 'text', '--out', join(work, 'small.jsonl'), '--queue', url])).cpu;
        run = await timed(score(`queued-${count}.jsonl`, ['--queue', url, '--chunk-rows', String(chunkRows)]));
        await stop();
        if (readFileSync(join(work, `queued-${count}.jsonl`), 'utf8') !== readFileSync(join(work, 'single.jsonl'), 'utf8')) throw new Error(`${setup}: the output differs from the single process's`);
      }
      runsOf[s].push({ rate: run.summary.rowsPerSecond, seconds: run.summary.seconds, cpu: run.cpu, steal: steal() });
    }
  }
  const best = runsOf.map((runs) => runs.reduce((a, b) => (b.rate > a.rate ? b : a)));

  // BullMQ/Redis per job: a no-op worker returning a real chunk's scored rows, the coordinator's
  // pattern of 32 jobs in flight, and the redis-server's CPU over the run.
  const lines = readFileSync(input, 'utf8').split('\n').slice(1, chunkRows + 1);
  const chunkInput = lines.map((l, i) => ({ line: i + 2, id: String(i), text: l.slice(l.indexOf(',') + 2, -1) }));
  const chunkOutput = { text: readFileSync(join(work, 'single.jsonl'), 'utf8').split('\n').slice(0, chunkRows).map((l) => `${l}\n`).join(''), count: chunkRows };
  const connection = { host: '127.0.0.1', port };
  const queue = new Queue<ChunkJob, ChunkResult>(SCORE_QUEUE, { connection });
  queue.setMaxListeners(100);
  const events = new QueueEvents(SCORE_QUEUE, { connection });
  const noop = new Worker<ChunkJob, ChunkResult>(SCORE_QUEUE, async () => ({ worker: 'noop', attempt: 1, rows: chunkOutput }), { connection: { ...connection, maxRetriesPerRequest: null }, concurrency: 32 });
  await Promise.all([events.waitUntilReady(), noop.waitUntilReady()]);
  const redisCpu0 = cpuOf(redis.pid!);
  const t0 = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < jobs; i++) {
    const job = await queue.add('score', { run: 'bench', chunk: i, modelId: '', modelHash: '', options: { skills: 5, axes: {}, batchSize: 256 }, format: 'jsonl', rows: chunkInput }, { jobId: `bench-${i}` });
    inFlight.push(job.waitUntilFinished(events).then(() => job.remove()));
    if (inFlight.length >= 32) await inFlight.shift();
  }
  await Promise.all(inFlight);
  const jobSeconds = (performance.now() - t0) / 1000;
  const redisPerJob = (cpuOf(redis.pid!) - redisCpu0) / jobs;
  await Promise.all([noop.close(), events.close(), queue.close()]);
  const payload = (JSON.stringify(chunkInput).length + JSON.stringify(chunkOutput).length) / 1e6;

  const base = best[0].rate;
  const table = new Table({ head: ['set-up', 'rows', 'rows/s (best)', 'rows/s of each round', 'vs single', 'overhead', 'scoring s', 'coordinator CPU s', 'steal % of each round'] });
  for (const [s, r] of best.entries())
    table.push([SETUPS[s].setup, rows, Math.round(r.rate), runsOf[s].map((x) => Math.round(x.rate)).join(' / '), `${(r.rate / base).toFixed(3)}x`, s ? `${(100 * (1 - r.rate / base)).toFixed(1)}%` : '', r.seconds.toFixed(1), s ? r.cpu.toFixed(1) : '', runsOf[s].map((x) => stealCell(x.steal)).join(' / ')]);
  console.log(`\nDistributed scoring: ${rows} postings, chunks of ${chunkRows} rows, nearest occupation, industry, 5 skills, both named axes; ${rounds} alternating rounds, each set-up's best compared`);
  console.log(machineLine(describeMachine()));
  console.log(table.toString());
  const perWorker = best[2].rate / 2; // one thread's worker
  const coordinatorCpuPerRow = (Math.max(...runsOf.slice(1).flat().map((r) => r.cpu)) - fixedCpu) / rows;
  const redisCeiling = chunkRows / redisPerJob;
  const coordinatorCeiling = 1 / coordinatorCpuPerRow;
  console.log(`\nBullMQ on Redis, ${jobs} no-op jobs of one real chunk (${payload.toFixed(2)} MB in and out): ${(jobs / jobSeconds).toFixed(0)} jobs/s end to end (one client process), redis-server CPU ${(1000 * redisPerJob).toFixed(2)} ms per job`);
  console.log(`coordinator CPU ${(1e6 * coordinatorCpuPerRow).toFixed(1)} us per row (reading, hashing, queueing, writing; its process's user + system time less ${fixedCpu.toFixed(1)} s of a one-chunk run)`);
  console.log(`ceilings: Redis (one core) ${Math.round(redisCeiling).toLocaleString('en-US')} rows/s; the coordinator (one core) ${Math.round(coordinatorCeiling).toLocaleString('en-US')} rows/s`);
  for (const n of [10, 100, 1000]) {
    const ideal = n * perWorker;
    const got = Math.min(ideal, redisCeiling, coordinatorCeiling);
    const limit = got === ideal ? 'the workers' : got === redisCeiling ? 'Redis' : 'the coordinator';
    console.log(`${n} workers of 1 thread: ${Math.round(ideal).toLocaleString('en-US')} rows/s of workers, ${Math.round(got).toLocaleString('en-US')} rows/s at most (bound by ${limit})`);
  }
} finally {
  redis.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
