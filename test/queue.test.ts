/**
 * Distributed scoring on a real Redis (BullMQ): a coordinator and worker processes against the
 * single-process `score`, a worker killed mid-run, a worker with another model, Redis stopped
 * mid-run; and Parquet in and out.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { parquetWriteFile } from 'hyparquet-writer';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { scoreFile } from '../src/analysis/score.js';
import { build } from '../src/build.js';
import { chunkRowsOf, redisWatch } from '../src/queue/coordinator.js';
import { redisAddress } from '../src/queue/connection.js';
import { startWorker } from '../src/queue/worker.js';
import { SpaceError } from '../src/errors.js';
import { LaborSpace } from '../src/space.js';
import { assertRejects, beforeAll, randomIndex, rng } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const REDIS = '/usr/bin/redis-server';
const ROOT = join(import.meta.dirname, '..');

let work: string, home: string, otherHome: string;
let space: LaborSpace;
let input: string;

/** A free loopback port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** The CLI in a process of its own, with its output and exit; killed after `limitSeconds`, if given. */
function cli(args: string[], limitSeconds?: number) {
  const code = "import('./src/cli/main.ts').then((m) => m.main(['node', 'laborspace', ...process.argv.slice(1)])).catch((e) => { console.error('laborspace: ' + e.message); process.exitCode = 1; })";
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', code, '--', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  if (limitSeconds) {
    const limit = setTimeout(() => child.kill('SIGKILL'), limitSeconds * 1000);
    child.on('close', () => clearTimeout(limit));
  }
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  /** Resolves when stderr has printed a match. */
  const saw = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => pattern.test(stderr) && (resolve(), true);
      if (check()) return;
      child.stderr!.on('data', check);
      void done.then(() => reject(new Error(`exited before printing ${pattern}: ${stderr}`)));
    });
  return { child, done, saw, get stderr() { return stderr; } };
}

/** A redis-server on a free port, its data in `dir` (saved when it is stopped, for the restart). */
async function startRedis(dir: string, port?: number) {
  port ??= await freePort();
  const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '3600 1', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}/0`;
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const c = connect(port!, '127.0.0.1', () => (c.end(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  return { port, url, stop };
}

let redis: Awaited<ReturnType<typeof startRedis>>;
const workers: ReturnType<typeof cli>[] = [];
const worker = (url: string, h = home, ...extra: string[]) => {
  const w = cli(['--home', h, 'worker', '--queue', url, '--threads', '1', '--stall-seconds', '2', ...extra]);
  workers.push(w);
  return w;
};
const stopWorkers = async () => {
  for (const w of workers.splice(0)) {
    w.child.kill('SIGKILL');
    await w.done;
  }
};
const scoreArgs = (file: string, out: string, json = true) => ['--home', home, ...(json ? ['--json'] : []), 'score', '--input', file, '--text-column', 'text', '--id-column', 'id', '--out', out, '--skills', '3', '--batch-size', '16'];

// Without redis-server the tests are skipped, saying so, unless LABORSPACE_REQUIRE_SERVICES=1 (as
// .ci/run sets) makes it a failure.
const hasRedis = existsSync(REDIS);
const skipRedis = !hasRedis && process.env.LABORSPACE_REQUIRE_SERVICES !== '1';
if (skipRedis) console.log(`  skipped the distributed scoring tests: ${REDIS} is missing (apt-get install redis-server)`);

/** Fixture postings: a title and skills of the space each, and a few bad rows. */
function postings(rows: number, seed: number): string {
  const titles = (['occupation', 'skill', 'industry'] as const).flatMap((t) => space.index.vectors(t)!.refs.map((r) => space.title(r)));
  const next = rng(seed);
  const lines = ['id,text'];
  for (let i = 0; i < rows; i++) {
    if (i === 7) lines.push(`${i},`); // empty text
    else if (i === 30) lines.push(`${i},"bad, row",extra`); // a field too many
    else lines.push(`${i},"${titles[randomIndex(next, titles.length)]} with ${titles[randomIndex(next, titles.length)]}"`);
  }
  return `${lines.join('\n')}\n`;
}

async function setUp() {
  work = mkdtempSync(join(tmpdir(), 'laborspace-queue-'));
  home = join(work, 'home');
  otherHome = join(work, 'other');
  await build(home, { dataDir: FIXTURES, threads: 2, train: false });
  space = await LaborSpace.open(home);
  input = join(work, 'postings.csv');
  writeFileSync(input, postings(400, 5));
}

async function tearDown() {
  await stopWorkers();
  await redis?.stop();
  await space?.close();
  if (work) rmSync(work, { recursive: true, force: true });
}

const Parquet = suite('Parquet input and output');
beforeAll(Parquet, setUp);

Parquet('should score a Parquet file into Parquet, row for row as the same rows in CSV', async () => {
  const rows = readFileSync(input, 'utf8').trim().split('\n').slice(1).filter((l) => /^\d+,"[^"]*"$/.test(l)).map((l) => ({ id: l.slice(0, l.indexOf(',')), text: l.slice(l.indexOf(',') + 2, -1) }));
  const parquetIn = join(work, 'postings.parquet');
  parquetWriteFile({ filename: parquetIn, columnData: [{ name: 'id', data: rows.map((r) => r.id), type: 'STRING' }, { name: 'text', data: rows.map((r) => r.text), type: 'STRING' }], rowGroupSize: 100 });
  const fromCsv = join(work, 'from-csv.jsonl'), parquetOut = join(work, 'postings.scored.parquet');
  const options = { textColumn: 'text', idColumn: 'id', skills: 2, axes: {}, batchSize: 16 };
  await scoreFile(space, input, fromCsv, options);
  const summary = await scoreFile(space, parquetIn, parquetOut, options);
  assert.is(summary.rows, rows.length);
  const expected = readFileSync(fromCsv, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const got = await parquetReadObjects({ file: await asyncBufferFromFile(parquetOut) });
  assert.is(got.length, expected.length);
  for (const [i, row] of got.entries()) {
    const e = expected[i];
    assert.equal(
      [row.id, row.occupation_ref, row.occupation_score, row.industry_ref, row.skill_1_ref, row.skill_2_score],
      [e.id, e.occupation?.ref ?? null, e.occupation?.score ?? null, e.industry?.ref ?? null, e.skills[0]?.ref ?? null, e.skills[1]?.score ?? null],
      `row ${i}`,
    );
  }
  await assertRejects(scoreFile(space, parquetIn, join(work, 'x.csv'), { textColumn: 'body' }), SpaceError, /postings\.parquet: no column "body" \(found: id, text\)/);
});

Parquet.run();

// Needs no redis-server: each of these fails before a Redis is used, or finds none.
const Start = suite('queue start-up: bad options, a bad address, no Redis');
Start.after(async () => {
  if (skipRedis) await tearDown();
});

/** What a CLI run in this process threw (commander's parse errors, the library's errors). */
async function cliError(...args: string[]): Promise<string> {
  const { runCli } = await import('./helpers.js');
  try {
    await runCli(...args);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${args.join(' ')} did not fail`);
}

Start('should refuse a count option of 0, negative or fractional, naming it', async () => {
  const closed = 'redis://127.0.0.1:1/0';
  for (const value of ['0', '-1', '1.5']) {
    for (const option of ['--chunk-rows', '--in-flight']) assert.is(await cliError(...scoreArgs(input, join(work, 'x.csv')), '--queue', closed, option, value), `error: option '${option} <n>' argument '${value}' is invalid. must be a positive integer`);
    assert.is(await cliError('--home', home, 'worker', '--queue', closed, '--concurrency', value), `error: option '--concurrency <n>' argument '${value}' is invalid. must be a positive integer`);
  }
  // Past a day BullMQ's timers would pass Node's limit (24.8 days) and fire at once.
  for (const value of ['0', '1.5', '86401', '1e12'])
    assert.is(await cliError('--home', home, 'worker', '--queue', closed, '--stall-seconds', value), `error: option '--stall-seconds <n>' argument '${value}' is invalid. must be an integer from 1 to 86,400`);
  await assertRejects(startWorker(space, closed, { stallSeconds: 86_401 }), SpaceError, /^stallSeconds must be an integer from 1 to 86,400, got 86401$/, 'BAD_OPTION');
});

Start('should make chunks of whole batches: the default the first multiple of --batch-size from 1,024, another size refused', async () => {
  assert.equal([16, 100, 256, 2000].map((b) => chunkRowsOf(undefined, b)), [1024, 1100, 1024, 2000]);
  assert.is(chunkRowsOf(48, 16), 48);
  assert.throws(() => chunkRowsOf(10, 16), /^--chunk-rows 10 is not a multiple of --batch-size 16: a chunk must hold whole batches for the output to be the single process's \(16 would do\)$/);
  // From the command line, before any Redis is asked (this one is not there).
  assert.is(
    await cliError(...scoreArgs(input, join(work, 'x.csv')), '--queue', 'redis://127.0.0.1:1/0', '--chunk-rows', '1000'),
    "--chunk-rows 1000 is not a multiple of --batch-size 16: a chunk must hold whole batches for the output to be the single process's (992 or 1,008 would do)",
  );
});

Start('should reject a queue address that is not redis://, in score and worker alike', async () => {
  assert.equal(redisAddress('redis://10.0.0.5:6380/2'), { host: '10.0.0.5', port: 6380, db: 2 });
  assert.throws(() => redisAddress('http://x:1'), /--queue http:\/\/x:1: expected redis:\/\/HOST:PORT\/DB \(or rediss:\/\/ for TLS\), not http:\/\//);
  assert.throws(() => redisAddress('redis://x:1/db'), /the database must be a number, got "db"/);
  assert.throws(() => redisAddress('nowhere'), /not an address; expected redis:\/\/HOST:PORT\/DB/);
  for (const [url, message] of [
    ['http://x', '--queue http://x: expected redis://HOST:PORT/DB (or rediss:// for TLS), not http://'],
    ['redis://host:notaport', '--queue redis://host:notaport: not an address; expected redis://HOST:PORT/DB'],
  ]) {
    assert.is(await cliError(...scoreArgs(input, join(work, 'x.csv')), '--queue', url), message);
    assert.is(await cliError('--home', home, 'worker', '--queue', url), message);
  }
});

Start('should stop score and worker at once with one line naming the address when no Redis answers', async () => {
  const url = `redis://127.0.0.1:${await freePort()}/0`; // nothing listens there
  // Killed at 30 s: BullMQ's clients alone retried it forever, the worker saying so, the
  // coordinator hanging after a wrong "went away".
  const runs = await Promise.all([cli([...scoreArgs(input, join(work, 'x.csv')), '--queue', url], 30).done, cli(['--home', home, 'worker', '--queue', url], 30).done]);
  const line = `laborspace: --queue ${url}: no Redis answered (connect ECONNREFUSED ${url.slice('redis://'.length, -'/0'.length)})\n`;
  for (const run of runs) assert.equal([run.code, run.stderr], [1, line]);
  assert.ok(!existsSync(join(work, 'x.csv')));
});

Start("should give up on a Redis whose connection stays down, however seldom its errors come, and not on one that comes back", async () => {
  // BullMQ's clients retry with growing delays (up to 20 s): a watch that went by the errors'
  // timing waited forever once they came more than 3 s apart. It reads the connection's state.
  const client = { status: 'ready' };
  const watched = Object.assign(new EventEmitter(), { getBackend: () => ({ client: Promise.resolve(client) }) });
  const watch = redisWatch('redis://x:1/0', 0.5, [watched]);
  try {
    client.status = 'reconnecting';
    await sleep(300);
    client.status = 'ready'; // back within the limit
    assert.is(await watch.guard(sleep(700).then(() => 'went on')), 'went on');
    client.status = 'reconnecting';
    watched.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:1')); // the only error it sees
    const started = Date.now();
    await assertRejects(watch.guard(new Promise(() => {})), SpaceError, /^Redis at redis:\/\/x:1\/0 went away \(connect ECONNREFUSED 127\.0\.0\.1:1\) and did not come back within 0\.5 s: the chunks scored so far are kept in Redis; run the same command again to resume$/);
    assert.ok(Date.now() - started >= 450, `gave up after ${Date.now() - started} ms, before the limit`);
  } finally {
    watch.stop();
  }
});

Start.run();

const Queue = suite('distributed scoring on Redis');
beforeAll(Queue, async () => {
  if (skipRedis) return;
  if (!hasRedis) throw new Error(`the distributed scoring tests need Debian's redis-server at ${REDIS} (apt-get install redis-server), as LABORSPACE_REQUIRE_SERVICES=1 asks`);
  mkdirSync(join(work, 'redis'));
  redis = await startRedis(join(work, 'redis'));
});
Queue.after(tearDown);
Queue.after.each(stopWorkers);

const test = skipRedis ? Queue.skip : Queue;

test('should score across two workers exactly as the single process, and survive a worker killed mid-run', async () => {
  const single = join(work, 'single.csv');
  const { runCli } = await import('./helpers.js');
  JSON.parse(await runCli(...scoreArgs(input, single)));
  const [a, b] = [worker(redis.url, home, '--log-chunks'), worker(redis.url)];
  await Promise.all([a.saw(/worker \S+ on redis:/), b.saw(/worker \S+ on redis:/)]);
  const queued = join(work, 'queued.csv');
  const coordinator = cli([...scoreArgs(input, queued, false), '--queue', redis.url, '--chunk-rows', '16', '--in-flight', '4']);
  // Killed once it has scored a chunk (so it counts as seen) and taken the next, which it then
  // holds for the time 16 rows take to score: its lock runs out and the other worker takes it.
  const holding = a.saw(/chunk \d+ scored in \d+ ms\n(?:.*\n)*?.*chunk \d+ taken/);
  await Promise.race([holding, coordinator.done.then(() => Promise.reject(new Error(`the run ended before the worker took a second chunk: ${a.stderr}`)))]);
  a.child.kill('SIGKILL');
  const result = await coordinator.done;
  assert.is(result.code, 0, result.stderr);
  assert.equal(readFileSync(queued, 'utf8'), readFileSync(single, 'utf8'), 'the same bytes as the single process');
  const [, rows, chunks, reused, seen, retries] = /^(\d+) rows scored .*\nrun \w+: (\d+) chunks \((\d+) from an earlier run\), (\d+) workers, (\d+) retries\n/.exec(result.stdout) ?? [];
  assert.equal([rows, chunks, reused, seen].map(Number), [398, Math.ceil(398 / 16), 0, 2], result.stdout);
  assert.ok(Number(retries) >= 1, `the killed worker's chunk was taken again (${retries} retries)`);
  assert.match(result.stdout, /\nskipped line 9: empty text\nskipped line 32: wrong number of fields/, 'bad rows reported by line, as in the single process');
  // SIGTERM: the worker stops after the chunks in hand and says what it did.
  b.child.kill('SIGTERM');
  const stopped = await b.done;
  assert.is(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stderr, /stopping after the chunks in hand\n.*: \d+ chunks, \d+ rows scored/);
});

test('should score Parquet through the queue, byte for byte as the single process', async () => {
  const parquetIn = join(work, 'postings.parquet'); // written by the Parquet suite
  const single = join(work, 'single.parquet'), queued = join(work, 'queued.parquet');
  const { runCli } = await import('./helpers.js');
  await runCli(...scoreArgs(parquetIn, single));
  worker(redis.url);
  const result = await cli([...scoreArgs(parquetIn, queued), '--queue', redis.url, '--chunk-rows', '64']).done;
  assert.is(result.code, 0, result.stderr);
  assert.equal(readFileSync(queued), readFileSync(single));
});

test('should refuse a chunk on a worker with another model, naming the chunk and both models', async () => {
  await build(otherHome, { dataDir: FIXTURES, threads: 2, train: false, quantized: true });
  const other = await LaborSpace.open(otherHome);
  const hash = other.modelHash;
  await other.close();
  assert.is.not(hash, space.modelHash, 'the int8 model is another model');
  const w = worker(redis.url, otherHome);
  const result = await cli([...scoreArgs(input, join(work, 'refused.csv')), '--queue', redis.url, '--chunk-rows', '96']).done;
  assert.is(result.code, 1);
  assert.match(result.stderr, new RegExp(`laborspace: chunk 0 \\(lines 2-99 of postings\\.csv\\) failed after 1 attempt: worker \\S+ has the space \\S+ \\(model ${hash.slice(0, 12)}\\) but run \\w+ was started with \\S+ \\(model ${space.modelHash.slice(0, 12)}\\)`));
  assert.match(w.stderr, /refused: worker/);
  assert.ok(!existsSync(join(work, 'refused.csv')), 'no output from a failed run');
});

test('should stop with a clear error when Redis goes away, and resume on a rerun', async () => {
  const big = join(work, 'big.csv');
  writeFileSync(big, postings(8000, 9));
  const single = join(work, 'big-single.csv'), queued = join(work, 'big-queued.csv');
  const { runCli } = await import('./helpers.js');
  await runCli(...scoreArgs(big, single));
  const w = worker(redis.url);
  const args = [...scoreArgs(big, queued), '--queue', redis.url, '--chunk-rows', '32', '--in-flight', '8'];
  const first = cli([...scoreArgs(big, queued, false), ...args.slice(scoreArgs(big, queued).length)]);
  await first.saw(/score \[(6[4-9]|[7-9]\d|\d{3,})\/\d+\] rows/); // two chunks written, at least
  await redis.stop(); // saves its data, as a Redis shut down cleanly does
  const failed = await first.done;
  assert.is(failed.code, 1, `${failed.stdout}${failed.stderr}`);
  assert.match(failed.stderr, new RegExp(`laborspace: Redis at ${redis.url.replace(/\//g, '\\/')} went away \\(.*\\) and did not come back within 5 s: the chunks scored so far are kept in Redis; run the same command again to resume`));
  assert.ok(!existsSync(queued));
  redis = await startRedis(join(work, 'redis'), redis.port);
  const rerun = await cli(args).done;
  assert.is(rerun.code, 0, rerun.stderr);
  const summary = JSON.parse(rerun.stdout);
  assert.ok(summary.reused >= 2, `chunks of the first run reused (${summary.reused})`);
  assert.match(w.stderr, /Redis at redis:\/\/127\.0\.0\.1:\d+\/0: .*ECONNREFUSED.* \(retrying\)/, 'the worker said it waits for Redis, then went on');
  assert.equal(readFileSync(queued, 'utf8'), readFileSync(single, 'utf8'));
});

test('should fail on a bad row with --on-error fail, as the single process does', async () => {
  const result = await cli([...scoreArgs(input, join(work, 'strict.csv')), '--queue', redis.url, '--on-error', 'fail']).done;
  assert.is(result.code, 1);
  assert.match(result.stderr, /laborspace: postings\.csv:9: the text is empty/);
  assert.ok(!existsSync(join(work, 'strict.csv')));
});

test('should stop a worker at once, naming the address, when the Redis there refuses it', async () => {
  const url = redis.url.replace(/\/0$/, '/99'); // Redis has 16 databases
  const run = await cli(['--home', home, 'worker', '--queue', url], 30).done;
  assert.equal([run.code, run.stderr], [1, `laborspace: --queue ${url}: the Redis there refused the connection (ERR DB index is out of range)\n`]);
});

Queue.run();
