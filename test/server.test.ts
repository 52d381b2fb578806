import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';

import type { FastifyInstance } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { build } from '../src/build.js';
import { SpaceError } from '../src/errors.js';
import { scoreTexts } from '../src/analysis/score.js';
import { HeavyThreads } from '../src/server/heavy-threads.js';
import { stopWorker } from '../src/util/worker.js';
import { createServer } from '../src/server/server.js';
import { openBuiltHomeStore } from '../src/home.js';
import { LaborSpace } from '../src/space.js';
import { trainStep } from '../src/train/run.js';
import { assertRejects as rejects, beforeAll } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
// The explorer as `npm run build` (run by npm ci) makes it.
const EXPLORER = join(import.meta.dirname, '..', 'dist', 'explorer');
const ARTIFACTS = join(import.meta.dirname, 'artifacts');
const CHROMIUM = '/usr/bin/chromium';

let home: string;
let space: LaborSpace;
let app: FastifyInstance;
let base: string;

async function setUp() {
  home = mkdtempSync(join(tmpdir(), 'laborspace-server-'));
  await build(home, { dataDir: FIXTURES, threads: 2, train: false });
  space = await LaborSpace.open(home);
  app = await createServer(space, { logLevel: 'silent', explorerDir: EXPLORER, bodyLimit: 64 * 1024 });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}

async function tearDown() {
  await app?.close();
  await space?.close();
  rmSync(home, { recursive: true, force: true });
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown, raw?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(base + path, method === 'GET' ? undefined : { method, headers: { 'content-type': 'application/json' }, body: raw ?? JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

const Api = suite('HTTP API');
beforeAll(Api, setUp);
Api.after(tearDown);

Api('should answer health, version, entities and near', async () => {
  const health = await call('GET', '/health');
  assert.is(health.status, 200);
  assert.is(health.json.status, 'ok');
  assert.ok((health.json.entities as Record<string, number>).occupation > 0);
  assert.is((await call('GET', '/v1/version')).json.model, space.modelId);
  const entity = await call('GET', `/v1/entities/${encodeURIComponent('occupation:29-1141.00')}?limit=2`);
  assert.is((entity.json.entity as { ref: string }).ref, 'occupation:onet:29-1141.00');
  const near = await call('GET', '/v1/near?q=registered%20nurse&types=occupation,skill&k=3');
  assert.equal(Object.keys(near.json.results as object), ['occupation', 'skill']);
  assert.is((near.json.results as Record<string, unknown[]>).occupation.length, 3);
  const byRef = await call('GET', '/v1/near?q=occupation:onet:29-1141.00&types=occupation&k=2');
  assert.is(byRef.json.ref, 'occupation:onet:29-1141.00');
});

Api('should answer axis, arith, shock, embed, score and map', async () => {
  const axis = await call('POST', '/v1/axis', { name: 'manufacturing-healthcare', types: ['occupation'], top: 2, bootstrap: 10, positions: ['occupation:onet:29-1141.00'] });
  assert.is(axis.status, 200);
  assert.is((axis.json.positions as unknown[]).length, 1);
  const poles = await call('POST', '/v1/axis', { from: ['"metal work"'], to: ['"patient care"'], types: ['industry'], top: 1, bootstrap: 0 });
  assert.is(((poles.json.results as Record<string, unknown[]>).industry).length, 1);
  const arith = await call('POST', '/v1/arith', { expr: 'occupation:onet:29-1141.00 - 0.5*"hospital"', types: ['occupation'], k: 2 });
  assert.is(((arith.json.results as Record<string, unknown[]>).occupation).length, 2);
  const shock = await call('POST', '/v1/shock', { direction: '"software"', types: ['occupation'], top: 3 });
  assert.is(((shock.json.results as Record<string, unknown[]>).occupation).length, 3);
  assert.is(shock.json.all, undefined, 'the full list stays out of the answer');
  const embed = await call('POST', '/v1/embed', { texts: ['nurse', 'welder'] });
  assert.equal([(embed.json.vectors as number[][]).length, (embed.json.vectors as number[][])[0].length, embed.json.dim], [2, 512, 512]);
  const score = await call('POST', '/v1/score', { texts: ['night shift nurse', 'CNC machinist'], skills: 2 });
  const rows = score.json.rows as { index: number; occupation: { ref: string }; skills: unknown[]; axes: Record<string, number> }[];
  assert.equal(rows.map((r) => [r.index, r.skills.length, typeof r.axes['manufacturing-healthcare']]), [[0, 2, 'number'], [1, 2, 'number']]);
  const map = await call('GET', '/v1/map?max=100');
  assert.ok((map.json.points as unknown[]).length <= 100 && (map.json.points as unknown[]).length > 0);
});

Api('should answer every bad request with a 4xx that says what is wrong, never a stack', async () => {
  const cases: [string, 'GET' | 'POST', unknown, number, RegExp, string?][] = [
    ['/v1/near', 'GET', undefined, 400, /querystring must have required property 'q'/],
    ['/v1/near?q=x&k=0', 'GET', undefined, 400, /querystring\/k must be >= 1/],
    ['/v1/near?q=x&types=planet', 'GET', undefined, 400, /^querystring\/types: unknown type "planet" \(expected a list of industry, occupation, skill, firm\)$/],
    ['/v1/near?q=x&types=,', 'GET', undefined, 400, /^querystring\/types: no types given/],
    ['/v1/near?q=x&colour=red', 'GET', undefined, 400, /must NOT have additional properties/],
    ['/v1/near?q=occupation:onet:99-9999.00', 'GET', undefined, 404, /no entity occupation:onet:99-9999\.00/],
    ['/v1/entities/occupation:onet:99-9999.00', 'GET', undefined, 404, /no entity/],
    ['/v1/arith', 'POST', { expr: 'skill:esco:x +' }, 400, /unexpected end of expression: expected an operand at position 15/],
    ['/v1/arith', 'POST', {}, 400, /body must have required property 'expr'/],
    ['/v1/arith', 'POST', { expr: 'x', k: 'many' }, 400, /body\/k must be integer/],
    ['/v1/axis', 'POST', { name: 'left-right' }, 400, /body\/name must be equal to one of the allowed values/],
    ['/v1/axis', 'POST', { from: ['"a"'] }, 400, /must have name, or both from and to/],
    ['/v1/axis', 'POST', { name: 'manufacturing-healthcare', from: ['"a"'], to: ['"b"'] }, 400, /either name or from and to, not both/],
    ['/v1/shock', 'POST', { direction: '2 * 3' }, 400, /the expression is a number/],
    ['/v1/embed', 'POST', { texts: [] }, 400, /body\/texts must NOT have fewer than 1 items/],
    ['/v1/embed', 'POST', { texts: [''] }, 400, /body\/texts\/0 must NOT have fewer than 1 characters/],
    ['/v1/score', 'POST', { texts: ['x'], axes: ['up-down'] }, 400, /body\/axes\/0 must be equal to one of the allowed values/],
    ['/v1/embed', 'POST', undefined, 400, /not valid JSON/, '{not json'],
    ['/v1/embed', 'POST', undefined, 413, /Request body is too large/, JSON.stringify({ texts: ['x'.repeat(20000), 'y'.repeat(20000), 'z'.repeat(20000), 'w'.repeat(20000)] })],
    ['/v2/nothing', 'GET', undefined, 404, /no route GET \/v2\/nothing/],
    ['/v1/embed', 'POST', { texts: ['nurse', ' \t '] }, 400, /body\/texts\/1 is blank: there is nothing to embed/],
    ['/v1/axis', 'POST', { from: ['"metal work"', '"   "'], to: ['"patient care"'] }, 400, /from\/1 is blank: a pole is a reference or some text/],
    ['/v1/axis', 'POST', { from: ['"metal work"'], to: ['  '] }, 400, /to\/0 is blank/],
    ['/v1/arith', 'POST', { expr: `${'('.repeat(150)}"nurse"${')'.repeat(150)}` }, 400, /nested more than 100 levels deep \(parentheses or minus signs\) at position 102/],
    ['/v1/arith', 'POST', { expr: `${'-'.repeat(3000)}"nurse"` }, 400, /nested more than 100 levels deep/],
    ['/v1/arith', 'POST', { expr: '1e308 * 10 * "nurse"' }, 400, /a number out of range \(beyond ±1\.8e308\) at position 7/],
    ['/v1/arith', 'POST', { expr: '1e999 * "nurse"' }, 400, /a number out of range/],
  ];
  for (const [path, method, body, status, message, raw] of cases) {
    const r = await call(method, path, body, raw);
    assert.is(r.status, status, `${method} ${path}: ${JSON.stringify(r.json)}`);
    assert.match(String(r.json.message), message, `${method} ${path}`);
    assert.not.match(JSON.stringify(r.json), /at .*\.(ts|js):\d+/, 'no stack trace');
  }
});

Api('should answer a 404 by the error code, not its wording, and take 1e308 as a weight', async () => {
  for (const path of ['/v1/near?q=occupation:onet:99-9999.00', '/v1/entities/occupation:onet:99-9999.00']) {
    const r = await call('GET', path);
    assert.equal([r.status, r.json.error], [404, 'unknown_entity'], path);
  }
  const axis = await call('POST', '/v1/axis', { name: 'manufacturing-healthcare', positions: ['occupation:onet:99-9999.00'], bootstrap: 0 });
  assert.equal([axis.status, axis.json.error], [404, 'unknown_entity']);
  const big = await call('POST', '/v1/arith', { expr: '1e308 * occupation:onet:29-1141.00 - 1e307 * "hospital"', types: ['occupation'], k: 2 });
  const small = await call('POST', '/v1/arith', { expr: '10 * occupation:onet:29-1141.00 - 1 * "hospital"', types: ['occupation'], k: 2 });
  assert.is(big.status, 200, JSON.stringify(big.json));
  assert.equal(big.json.results, small.json.results, 'the same direction at any scale');
});

Api('should score every text of a batch with a blank one, that row answering an error of its own', async () => {
  const r = await call('POST', '/v1/score', { texts: ['night shift nurse', '   ', 'CNC machinist'], skills: 1, axes: [] });
  assert.is(r.status, 200, JSON.stringify(r.json));
  const rows = r.json.rows as { index: number; error?: string; occupation?: { ref: string } }[];
  assert.equal(rows.map((row) => [row.index, typeof row.occupation?.ref, row.error]), [
    [0, 'string', undefined],
    [1, 'undefined', 'body/texts/1 is blank: there is nothing to score'],
    [2, 'string', undefined],
  ]);
});

Api('should stop a request whose time ran out and answer 503', async () => {
  const quick = await createServer(space, { logLevel: 'silent', explorerDir: EXPLORER, requestTimeout: 50 });
  try {
    const r = await quick.inject({ method: 'POST', url: '/v1/score', payload: { texts: Array.from({ length: 1000 }, (_, i) => `posting ${i}: nurse on a night shift`) } });
    assert.equal([r.statusCode, r.json().error], [503, 'timeout']);
    assert.match(r.json().message, /the request took longer than 50 ms and was stopped/);
  } finally {
    await quick.close();
  }
});

Api('should stop the work of a request whose client disconnected, freeing its slot', async () => {
  const one = await createServer(space, { logLevel: 'silent', explorerDir: EXPLORER, heavySlots: 1 });
  const url = await one.listen({ host: '127.0.0.1', port: 0 });
  const embedOne = () => fetch(`${url}/v1/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts: ['welder'] }) });
  try {
    // The analysis thread opens its space and starts its encoder on the first request: not timed.
    assert.is((await embedOne()).status, 200);
    const texts = Array.from({ length: 1000 }, (_, i) => `night shift nurse ${i}`);
    const client = new AbortController();
    const score = fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts }), signal: client.signal });
    await new Promise((resolve) => setTimeout(resolve, 150));
    client.abort();
    await score.catch(() => undefined);
    // The one heavy slot: held for the whole score (seconds) unless its work stopped.
    const t0 = performance.now();
    const embed = await embedOne();
    const waited = performance.now() - t0;
    assert.is(embed.status, 200);
    assert.ok(waited < 500, `the next heavy request waited ${waited.toFixed(0)} ms`);
  } finally {
    await one.close();
  }
});

Api('should keep the event loop answering while heavy requests run', async () => {
  // Reference queries sent while a 1,000-text score and a 1,000-resample axis run: before, the
  // encoder and the bootstrap held the event loop for hundreds of milliseconds at a time.
  const texts = Array.from({ length: 1000 }, (_, i) => `night shift nurse ${i}`);
  const heavy = Promise.all([
    call('POST', '/v1/score', { texts, skills: 5 }),
    call('POST', '/v1/axis', { name: 'manufacturing-healthcare', bootstrap: 1000 }),
  ]);
  const latencies: number[] = [];
  let done = false;
  void heavy.finally(() => (done = true));
  while (!done) {
    const t0 = performance.now();
    assert.is((await call('GET', '/v1/near?q=occupation:onet:29-1141.00&k=5')).status, 200);
    latencies.push(performance.now() - t0);
  }
  const [score, axis] = await heavy;
  assert.equal([score.status, axis.status], [200, 200]);
  latencies.sort((a, b) => a - b);
  const worst = latencies[latencies.length - 1];
  assert.ok(latencies.length >= 5 && worst < 150, `${latencies.length} reference queries meanwhile, the slowest ${worst.toFixed(0)} ms`);
});

Api('should bind to loopback by default from the command line options', async () => {
  // createServer leaves the host to the caller; `laborspace serve` passes 127.0.0.1 unless told.
  const { buildProgram } = await import('../src/cli/main.js');
  const serve = buildProgram().commands.find((c) => c.name() === 'serve')!;
  assert.is(serve.options.find((o) => o.long === '--host')!.defaultValue, '127.0.0.1');
});

Api('should run heavy requests on analysis threads: the same answers, the same errors, cancelled, replaced when one dies', async () => {
  const threads = new HeavyThreads(space, 1);
  // The answer comes as its body's JSON bytes, written on the thread: the event loop only sends it.
  const answer = async (request: Parameters<HeavyThreads['run']>[0]) => {
    const body = await threads.run(request, new AbortController().signal);
    assert.instance(body, Uint8Array);
    return JSON.parse(Buffer.from(body).toString('utf8'));
  };
  try {
    const direction = '"artificial intelligence" + "machine learning"';
    const { all: _all, ...direct } = await space.shock(direction, { top: 3, all: false });
    assert.equal(await answer({ route: 'shock', direction, options: { top: 3 } }), JSON.parse(JSON.stringify(direct)));
    const scored = await answer({ route: 'score', texts: ['registered nurse', ' ', 'welder'], skills: 2, axes: {} });
    const direct2 = (await scoreTexts(space, ['registered nurse', 'welder'], { skills: 2 })).map(({ id: _id, ...row }) => row);
    assert.equal(scored.rows, JSON.parse(JSON.stringify([{ index: 0, ...direct2[0] }, { index: 1, error: 'body/texts/1 is blank: there is nothing to score' }, { index: 2, ...direct2[1] }])), 'the rows scoreTexts gives, the blank one an error of its own');
    assert.equal(threads.health(), { threads: 1, ready: 1, restarts: 0 });
    const error = await threads.run({ route: 'axis', from: ['occupation:onet:00-0000.00'], to: ['nurse'], options: {} }, new AbortController().signal).catch((e) => e);
    assert.instance(error, SpaceError, 'the same class as thrown on the thread: the server answers it the same');
    assert.equal([(error as SpaceError).code, (error as Error).message], ['UNKNOWN_ENTITY', 'no entity occupation:onet:00-0000.00']);
    const client = new AbortController();
    const cancelled = threads.run({ route: 'score', texts: Array.from({ length: 1000 }, (_, i) => `nurse ${i}`), skills: 1, axes: {} }, client.signal);
    setTimeout(() => client.abort(new Error('gave up')), 50);
    await rejects(cancelled, Error, /gave up/);
    // A thread that stops in the middle of a request (asked to here, as one whose code failed would
    // stop) fails what it ran and is replaced.
    const running = threads.run({ route: 'axis', from: ['manufacturing'], to: ['healthcare'], options: { bootstrap: 1000 } }, new AbortController().signal);
    await stopWorker((threads as unknown as { threads: { worker: Worker }[] }).threads[0].worker);
    await rejects(running, Error, /the analysis thread running this request stopped \(exit code 0\)/);
    assert.is(threads.health().restarts, 1);
    assert.equal(await answer({ route: 'shock', direction, options: { top: 3 } }), JSON.parse(JSON.stringify(direct)), 'its replacement answers');
    // Closed while its encoder thread encodes: both stop between batches (a thread stopped inside
    // onnxruntime's run would abort this process), and the request fails.
    const embedding = threads.run({ route: 'embed', texts: Array.from({ length: 2000 }, (_, i) => `night shift nurse ${i}`) }, new AbortController().signal).catch((e) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await threads.close();
    assert.match(String(await embedding), /^Error: the analysis threads were closed before this request finished$/);
  } finally {
    await threads.close();
  }
  // A thread that finds another space at the home than the server's refuses to serve it.
  const other = Object.create(space, { modelHash: { value: 'f'.repeat(64) } }) as LaborSpace;
  const refusing = new HeavyThreads(other, 1);
  try {
    const error = await refusing.run({ route: 'embed', texts: ['welder'] }, new AbortController().signal).catch((e) => e);
    assert.instance(error, SpaceError);
    assert.match((error as Error).message, /changed since the server opened it: restart the server to serve it/);
    assert.equal(refusing.health(), { threads: 1, ready: 0, restarts: 0 }, 'not restarted over and over');
  } finally {
    await refusing.close();
  }
  assert.equal(((await call('GET', '/health')).json.analysisThreads as { threads: number }).threads, 1, '/health reports them');
});

// Last: it trains on the home the other tests query.
Api('should answer 503 stale on /health once training has changed the space under the server', async () => {
  assert.is((await call('GET', '/health')).json.status, 'ok');
  const store = openBuiltHomeStore(home);
  try {
    await trainStep(store, home, { encoder: { steps: 2, batchSize: 8, headSteps: 0 } });
  } finally {
    store.close();
  }
  const health = await call('GET', '/health');
  assert.is(health.status, 503);
  assert.is(health.json.status, 'stale');
  assert.match(String(health.json.message), /^the home's space changed since it was opened \(then use-lite-base [0-9a-f]{12}, vectors \d+, now use-lite-tuned [0-9a-f]{12} of training run \d+, vectors \d+\): restart the server to serve it$/);
  assert.is(health.json.model, 'use-lite-base', 'still the space it opened');
});

Api.run();

// Without the browser the test is skipped, saying so, unless LABORSPACE_REQUIRE_SERVICES=1 (as
// .ci/run sets) makes a missing browser a failure.
const hasBrowser = existsSync(CHROMIUM);
const skipBrowser = !hasBrowser && process.env.LABORSPACE_REQUIRE_SERVICES !== '1';
if (skipBrowser) console.log(`  skipped the explorer's browser test: ${CHROMIUM} is missing (apt-get install chromium)`);

const Explorer = suite('explorer in headless Chromium');
let browser: Browser;
let served = false;
beforeAll(Explorer, async () => {
  if (skipBrowser) return;
  if (!hasBrowser) throw new Error(`the browser test needs Debian's chromium at ${CHROMIUM} (apt-get install chromium), as LABORSPACE_REQUIRE_SERVICES=1 asks`);
  await setUp();
  served = true;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
});
Explorer.after(async () => {
  await browser?.close();
  if (served) await tearDown();
});

(skipBrowser ? Explorer.skip : Explorer)('should search, open a result, rank an axis and compute a shock', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  await page.goto(`${base}/`);
  await page.fill('#search', 'registered nurse');
  await page.click('#search-button');
  const first = page.locator('#results [data-type="occupation"] li button').first();
  await first.waitFor();
  assert.ok((await page.locator('#results [data-type="skill"] li').count()) > 0, 'skills listed');
  const ref = await first.getAttribute('data-ref');
  await first.click();
  await page.waitForSelector('#detail:not([hidden]) h2');
  assert.match((await page.textContent('#detail')) ?? '', ref!);
  assert.is(await page.inputValue('#search'), ref);
  await page.click('#axis-run');
  await page.locator('#axis-results li').first().waitFor();
  assert.match((await page.textContent('#axis-results')) ?? '', /nearest the "to" end/);
  await page.click('#shock-run');
  await page.locator('#shock-results tbody tr').first().waitFor();
  await page.locator('#map canvas').waitFor();
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'explorer.png'), fullPage: true });
  assert.ok(existsSync(join(ARTIFACTS, 'explorer.png')));
  assert.equal(errors, [], 'no page errors, no failed requests (nothing fetched from outside)');
  await page.close();
});

Explorer.run();

const Cluster = suite('serve --workers: processes sharing the port');
let clusterHome: string;
let serving: ChildProcess | undefined;
beforeAll(Cluster, async () => {
  clusterHome = mkdtempSync(join(tmpdir(), 'laborspace-cluster-'));
  await build(clusterHome, { dataDir: FIXTURES, threads: 2, train: false });
});
Cluster.after(async () => {
  if (serving && serving.exitCode === null) {
    serving.kill('SIGTERM');
    await new Promise((r) => serving!.once('exit', r));
  }
  rmSync(clusterHome, { recursive: true, force: true });
});

/**
 * `serve --workers 2` on the cluster home, with its stderr; `node` is Node's own options, which
 * cluster passes on to the workers. The built command (npm run build): cluster forks its own entry
 * point. Killed after a minute, so a server that never exits fails the test instead of hanging it.
 */
function serveWorkers(serve: string[], node: string[] = []) {
  serving = spawn(process.execPath, [...node, join(import.meta.dirname, '..', 'bin', 'laborspace.js'), '--home', clusterHome, 'serve', '--workers', '2', ...serve], { stdio: ['ignore', 'ignore', 'pipe'] });
  const child = serving;
  const out = { stderr: '', exited: new Promise<number | null>((r) => child.once('exit', (code) => (clearTimeout(limit), r(code)))) };
  const limit = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d));
  return out;
}

Cluster('should exit 1 naming the cause, restarting nothing, when the workers cannot open the home', async () => {
  // In the workers only, --home names a folder that is not there: the home gone between the
  // primary's opening it and theirs.
  const preload = join(clusterHome, 'home-gone-in-workers.mjs');
  writeFileSync(preload, "import cluster from 'node:cluster';\nif (cluster.isWorker) process.argv[process.argv.indexOf('--home') + 1] += '-gone';\n");
  const server = serveWorkers(['--port', '0'], ['--import', pathToFileURL(preload).href]);
  assert.is(await server.exited, 1, server.stderr);
  assert.match(server.stderr, new RegExp(`laborspace: no Labor Space home at ${clusterHome}-gone: run \`laborspace build\``));
  assert.match(server.stderr, /\nlaborspace: serve worker \d+ exited before serving \(code 1\): see its error above\n/);
  assert.not.match(server.stderr, /starting another/);
});

Cluster('should stop, naming the worker, when one does not start serving in time', async () => {
  // The workers hang before serving (a home on a mount that no longer answers, say).
  const preload = join(clusterHome, 'hang-in-workers.mjs');
  writeFileSync(preload, "import cluster from 'node:cluster';\nif (cluster.isWorker) { setInterval(() => {}, 1000); await new Promise(() => {}); }\n");
  const started = Date.now();
  const server = serveWorkers(['--port', '0', '--start-timeout', '2'], ['--import', pathToFileURL(preload).href]);
  assert.is(await server.exited, 1, server.stderr);
  assert.match(server.stderr, /\nlaborspace: serve worker \d+ did not start serving within 2 s and was stopped\n/);
  assert.not.match(server.stderr, /starting another/);
  assert.ok(Date.now() - started < 30_000, 'stopped at the deadline, not at the test\'s limit');
});

Cluster('should exit 1 naming the address when the port is taken', async () => {
  const taken = createNetServer();
  const port = await new Promise<number>((r) => taken.listen(0, '127.0.0.1', () => r((taken.address() as { port: number }).port)));
  try {
    const server = serveWorkers(['--port', String(port)]);
    assert.is(await server.exited, 1, server.stderr);
    assert.match(server.stderr, new RegExp(`laborspace: bind EADDRINUSE 127\\.0\\.0\\.1:${port}\n`));
    assert.match(server.stderr, /\nlaborspace: serve worker \d+ exited before serving \(code 1\): see its error above\n/);
    assert.not.match(server.stderr, /starting another/);
  } finally {
    taken.close();
  }
});

Cluster('should answer from two processes, restart one killed, and report them in /health', async () => {
  const server = serveWorkers(['--port', '0']);
  const url = await new Promise<string>((resolve, reject) => {
    serving!.stderr!.on('data', () => {
      const m = /serving on (http:\/\/[^\s:]+:\d+)/.exec(server.stderr);
      if (m) resolve(m[1]);
    });
    void server.exited.then((code) => reject(new Error(`serve exited (${code}): ${server.stderr}`)));
  });
  type Health = { status: string; worker: { pid: number }; workers: { size: number; alive: number; restarts: number } };
  // A new connection each time (fetch would keep one, always to the same process), given up after
  // 2 s (one handed to the process being killed is never answered).
  const health = () =>
    new Promise<Health>((resolve, reject) => {
      const request = get(`${url}/health`, { agent: false, timeout: 2000 }, (r) => {
        let body = '';
        r.on('data', (d: Buffer) => (body += d)).on('end', () => resolve(JSON.parse(body) as Health));
      });
      request.on('timeout', () => request.destroy(new Error('no answer in 2 s'))).on('error', reject);
    });
  /** /health until `ok` holds of what answered (each answer comes from one of the processes). */
  const until = async (ok: (h: Health) => boolean): Promise<Health> => {
    for (let i = 0; i < 200; i++) {
      const h = await health().catch(() => undefined);
      if (h && ok(h)) return h;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no /health answer as expected: ${server.stderr}`);
  };
  const first = await until((h) => h.workers.alive === 2);
  assert.equal([first.status, first.workers.size, first.workers.restarts], ['ok', 2, 0]);
  const pids = new Set<number>();
  await until((h) => (pids.add(h.worker.pid), pids.size === 2));
  const victim = [...pids][0];
  process.kill(victim, 'SIGKILL');
  const after = await until((h) => h.workers.restarts === 1 && h.workers.alive === 2);
  assert.is.not(after.worker.pid, victim);
  assert.match(server.stderr, new RegExp(`serve worker ${victim} died \\(SIGKILL\\): starting another`));
  const near = await fetch(`${url}/v1/near?q=registered%20nurse&types=occupation&k=2`);
  assert.is(near.status, 200);
  serving!.kill('SIGTERM');
  assert.is(await server.exited, 0, server.stderr);
});

Cluster.run();
