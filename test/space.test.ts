import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { BASE_MODEL_ID } from '../src/active-model.js';
import { build, encodeStep } from '../src/build.js';
import { openHomeStore } from '../src/home.js';
import { SpaceIndex } from '../src/index/space-index.js';
import { topk } from '../src/native.js';
import { checkCount, checkTypes, SpaceError } from '../src/errors.js';
import { LaborSpace, parseQuery } from '../src/space.js';
import { exportVectors } from '../src/store/export.js';
import { Store, StoreError } from '../src/store/index.js';
import { randomMatrix } from '../src/util/random.js';
import { assertRejects as rejects, assertThrowsCode, beforeAll, runCli, spawnCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const home = mkdtempSync(join(tmpdir(), 'laborspace-space-'));

const Index = suite('SpaceIndex');
const indexDir = join(home, 'synthetic-index');

function syntheticStore(): Store {
  const store = Store.open(':memory:');
  store.upsertEntities(Array.from({ length: 1200 }, (_, i) => ({ type: 'skill' as const, source: 'test', code: `s${i}`, title: `skill ${i}`, text: `skill ${i}` })));
  store.upsertEntities(Array.from({ length: 30 }, (_, i) => ({ type: 'occupation' as const, source: 'test', code: `o${i}`, title: `occ ${i}`, text: `occ ${i}` })));
  store.registerModel({ id: 'm', name: 'm', dim: 8 });
  const vectors = randomMatrix(1230, 8, 11);
  store.putVectors('m', store.entities().map((e, i) => ({ ref: e.ref, vector: vectors.slice(i * 8, (i + 1) * 8) })));
  return store;
}

Index('should search the same off the event loop as on it, for every method', async () => {
  const store = syntheticStore();
  for (const method of ['exact', 'int8', 'hnsw'] as const) {
    const index = SpaceIndex.open(store, 'm', join(home, `async-${method}`), { method });
    const q = index.vectors('skill')!.matrix.slice(8, 16);
    assert.equal(await index.searchAsync('skill', q, 5), index.search('skill', q, 5), method);
    assert.equal(await index.searchAsync('skill', q, 5, true), index.search('skill', q, 5, true), `${method}, exact`);
    assert.equal(await index.searchAsync('industry', q, 5), { rows: [], scores: [] });
  }
  store.close();
});

Index('should build HNSW where asked, reopen it without rebuilding, and agree with the exact scan', () => {
  const store = syntheticStore();
  const notes: string[] = [];
  const index = SpaceIndex.open(store, 'm', indexDir, { method: 'hnsw', onNote: (n) => notes.push(n) });
  const info = index.manifest.types.skill!;
  assert.is(info.method, 'hnsw');
  assert.ok(info.recall >= 0.99);
  assert.ok(existsSync(join(indexDir, 'skill.hnsw')));
  assert.is(index.manifest.types.occupation!.method, 'hnsw', 'asked for everywhere');
  const auto = SpaceIndex.open(store, 'm', join(home, 'auto-index'));
  assert.ok(auto.manifest.types.occupation!.method !== 'hnsw', 'by default small types are scanned (exact or int8, whichever measured faster)');
  assert.equal(notes, ['indexing 30 occupation vectors (no index yet)', 'indexing 1200 skill vectors (no index yet)']);
  const again = SpaceIndex.open(store, 'm', indexDir, { method: 'hnsw', onNote: (n) => notes.push(n) });
  assert.is(notes.length, 2, 'nothing rebuilt');
  const q = again.vectors('skill')!.matrix.slice(0, 8);
  const exact = topk(q, again.vectors('skill')!.matrix, 8, { k: 5, metric: 'dot' });
  assert.equal(again.search('skill', q, 5).rows, Array.from(exact.indices));
  assert.equal(again.search('industry', q, 5), { rows: [], scores: [] }, 'a type without vectors');
  store.close();
});

Index('should notice a corrupt file, changed vectors and a change of method, and rebuild', () => {
  const store = syntheticStore();
  writeFileSync(join(indexDir, 'skill.hnsw'), 'garbage');
  const notes: string[] = [];
  SpaceIndex.open(store, 'm', indexDir, { method: 'hnsw', onNote: (n) => notes.push(n) });
  assert.equal(notes, ['indexing 1200 skill vectors (skill.hnsw is corrupt (checksum mismatch))']);
  store.putVectors('m', [{ ref: 'skill:test:s5', vector: Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]) }]);
  SpaceIndex.open(store, 'm', indexDir, { method: 'hnsw', onNote: (n) => notes.push(n) });
  assert.match(notes[1], /skill vectors \(vectors changed\)/);
  const exact = SpaceIndex.open(store, 'm', indexDir, { method: 'exact', onNote: (n) => notes.push(n) });
  assert.match(notes[2], /\(exact search asked for\)/);
  assert.is(exact.manifest.types.skill!.method, 'exact');
  const int8 = SpaceIndex.open(store, 'm', indexDir, { method: 'int8', onNote: (n) => notes.push(n) });
  assert.match(notes[notes.length - 1], /\(int8 asked for\)/);
  const info = int8.manifest.types.skill!;
  assert.is(info.method, 'int8');
  assert.ok(info.recall >= 0.99 && info.candidates! >= 20);
  const q = int8.vectors('skill')!.matrix.slice(8, 16);
  assert.equal(int8.search('skill', q, 5).rows, int8.search('skill', q, 5, true).rows, 'int8 with re-scoring agrees with the exact scan');
  assert.is(existsSync(join(indexDir, 'skill.hnsw')), false, 'the unused HNSW file is removed');
  store.close();
});

/** 1,200 skills in 160 dimensions around a 24-dimensional subspace: what principal components capture. */
function lowRankStore(): Store {
  const store = Store.open(':memory:');
  store.upsertEntities(Array.from({ length: 1200 }, (_, i) => ({ type: 'skill' as const, source: 'test', code: `s${i}`, title: `skill ${i}`, text: `skill ${i}` })));
  store.registerModel({ id: 'm', name: 'm', dim: 160 });
  const factors = randomMatrix(1200, 24, 21);
  const basis = randomMatrix(24, 160, 22);
  const noise = randomMatrix(1200, 160, 23);
  const vectors = new Float32Array(1200 * 160);
  for (let i = 0; i < 1200; i++) for (let p = 0; p < 160; p++) {
    let v = 0.05 * noise[i * 160 + p];
    for (let f = 0; f < 24; f++) v += factors[i * 24 + f] * basis[f * 160 + p];
    vectors[i * 160 + p] = v;
  }
  store.putVectors('m', store.entities().map((e, i) => ({ ref: e.ref, vector: vectors.slice(i * 160, (i + 1) * 160) })));
  return store;
}

Index('should scan int8 codes of the leading principal components, store them checksummed, and rebuild them when corrupt', async () => {
  const store = lowRankStore();
  const dir = join(home, 'pca-index');
  const notes: string[] = [];
  const index = SpaceIndex.open(store, 'm', dir, { method: 'int8', ranks: [64], onNote: (n) => notes.push(n) });
  const info = index.manifest.types.skill!;
  assert.equal([info.method, info.rank, info.file], ['int8', 64, 'skill.pca']);
  assert.ok(info.recall >= 0.99, `recall ${info.recall}`);
  assert.is(readFileSync(join(dir, 'skill.pca')).length, 4 * 160 * 65, 'the mean and 64 components of 160 values');
  for (const row of [3, 500, 1199]) {
    const q = index.vectors('skill')!.matrix.slice(row * 160, (row + 1) * 160);
    const exact = index.search('skill', q, 10, true);
    assert.equal(index.search('skill', q, 10).rows, exact.rows, `row ${row}: the projected scan re-scored agrees with the exact one`);
    assert.equal(await index.searchAsync('skill', q, 10), index.search('skill', q, 10), `row ${row}, off the event loop`);
  }
  const again = SpaceIndex.open(store, 'm', dir, { method: 'int8', onNote: (n) => notes.push(n) });
  assert.is(notes.length, 1, 'reopened without rebuilding');
  assert.equal(again.search('skill', index.vectors('skill')!.matrix.slice(0, 160), 10), index.search('skill', index.vectors('skill')!.matrix.slice(0, 160), 10));
  writeFileSync(join(dir, 'skill.pca'), 'garbage');
  SpaceIndex.open(store, 'm', dir, { method: 'int8', ranks: [64], onNote: (n) => notes.push(n) });
  assert.equal(notes[1], 'indexing 1200 skill vectors (skill.pca is corrupt (checksum mismatch))');
  SpaceIndex.open(store, 'm', dir, { method: 'int8', ranks: [Infinity], onNote: (n) => notes.push(n) });
  assert.is(notes.length, 2, 'the ranks tried matter only when a type is (re)built');
  SpaceIndex.open(store, 'm', dir, { method: 'exact' });
  assert.is(existsSync(join(dir, 'skill.pca')), false, 'the unused components are removed');
  store.close();
});

Index.run();

const Space = suite('LaborSpace on the fixture data');
let space: LaborSpace;

beforeAll(Space, async () => {
  const summary = await build(home, { dataDir: FIXTURES, threads: 2, train: false });
  assert.ok(summary.encode.encoded > 600);
  space = await LaborSpace.open(home);
});
Space.after(async () => {
  await space?.close();
});

Space('should parse queries: quoted text, references, plain text', () => {
  assert.equal(parseQuery('"occupation:onet:1"'), { text: 'occupation:onet:1' });
  assert.equal(parseQuery('occupation:onet:29-1141.00'), { ref: 'occupation:onet:29-1141.00' });
  assert.equal(parseQuery('  nursing: the art  '), { text: 'nursing: the art' });
  assert.throws(() => parseQuery('  '), /the query is empty/);
  assert.throws(() => parseQuery('""'), /quoted query text is empty/);
});

Space('should find the nearest entities of each type to a text or a reference', async () => {
  const byText = await space.near('registered nurse', { types: ['occupation', 'industry'], k: 3 });
  assert.equal(Object.keys(byText.results), ['occupation', 'industry']);
  assert.ok(byText.results.occupation!.some((h) => h.ref.startsWith('occupation:onet:29-1141')), JSON.stringify(byText.results.occupation));
  const scores = byText.results.occupation!.map((h) => h.score);
  assert.equal(scores, [...scores].sort((a, b) => b - a), 'sorted by score');
  const byRef = await space.near('occupation:onet:29-1141.00', { types: ['occupation'], k: 3 });
  assert.is(byRef.ref, 'occupation:onet:29-1141.00');
  assert.ok(byRef.results.occupation!.every((h) => h.ref !== byRef.ref), 'the query entity is left out');
  assert.is(byRef.results.occupation!.length, 3);
  assert.ok(byRef.results.occupation![0].title.length > 0);
  const exact = await space.near('registered nurse', { types: ['occupation', 'industry'], k: 3, exact: true });
  assert.equal(exact.results, byText.results, 'small types are scanned exactly anyway');
});

Space('should reject bad queries and options', async () => {
  await rejects(space.near('occupation:onet:99-9999.00'), SpaceError, /no entity occupation:onet:99-9999\.00/);
  await rejects(space.near('nurse', { k: 0 }), SpaceError, /k must be an integer from 1 to 1000, got 0/);
  await rejects(space.near('nurse', { types: ['planet' as 'skill'] }), SpaceError, /unknown type "planet"/);
  const empty = mkdtempSync(join(tmpdir(), 'laborspace-empty-'));
  await rejects(LaborSpace.open(empty), SpaceError, /^no Labor Space home at .*laborspace-empty-.*: run `laborspace build`$/, 'NOT_BUILT');
  assert.not.ok(existsSync(join(empty, 'space.db')), 'opening does not create a store');
  openHomeStore(empty).close();
  await rejects(LaborSpace.open(empty), SpaceError, /has no encoded space yet: run `laborspace build/, 'NOT_BUILT');
  rmSync(empty, { recursive: true });
});

Space('should re-encode only texts that changed', async () => {
  const store = openHomeStore(home);
  try {
    const unchanged = await encodeStep(store, home);
    assert.is(unchanged.encoded, 0);
    assert.is(unchanged.cached, unchanged.entities);
    const nurse = store.entity('occupation:onet:29-1141.00')!;
    store.upsertEntities([{ ...nurse, text: `${nurse.text} Edited.` }]);
    const edited = await encodeStep(store, home);
    assert.is(edited.encoded, 1);
    assert.is(store.vectors(BASE_MODEL_ID).refs.length, edited.entities);
  } finally {
    store.close();
  }
});

Space.run();

const Cli = suite('space commands');
const run = (...argv: string[]) => runCli('--home', home, ...argv);

Cli('should answer near as JSON in the documented shape', async () => {
  const out = JSON.parse(await run('--json', 'near', 'registered nurse', '--types', 'occupation,skill,industry,firm', '--k', '2'));
  assert.is(out.query, 'registered nurse');
  assert.equal(Object.keys(out.results), ['occupation', 'skill', 'industry', 'firm']);
  for (const hits of Object.values(out.results) as { ref: string; title: string; score: number }[][]) {
    assert.is(hits.length, 2);
    assert.equal(Object.keys(hits[0]), ['ref', 'title', 'score']);
  }
  await rejects(run('near', 'x', '--types', 'occupation,planet'), Error, /unknown type "planet"/);
});

Cli('should export JSON lines and projector files', async () => {
  const file = join(home, 'vectors.jsonl');
  await run('export', '--format', 'jsonl', '--types', 'industry', '--out', file);
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.length, 20);
  assert.equal(Object.keys(lines[0]), ['ref', 'type', 'title', 'vector']);
  assert.is(lines[0].type, 'industry');
  assert.is(lines[0].vector.length, 512);
  const dir = join(home, 'projector');
  await run('export', '--format', 'projector', '--types', 'industry,firm', '--out', dir);
  const meta = readFileSync(join(dir, 'metadata.tsv'), 'utf8').trim().split('\n');
  const vectors = readFileSync(join(dir, 'vectors.tsv'), 'utf8').trim().split('\n');
  assert.is(meta[0], 'ref\ttype\ttitle');
  assert.is(meta.length - 1, vectors.length);
  assert.is(vectors[0].split('\t').length, 512);
  await rejects(run('export', '--format', 'csv'), Error, /Allowed choices are jsonl, projector/);
});

Cli('should leave an export file as it was when the export fails', async () => {
  const file = join(home, 'kept.jsonl');
  writeFileSync(file, 'previous');
  const store = openHomeStore(home);
  try {
    await rejects(exportVectors(store, 'no-such-model', { format: 'jsonl', out: file }), StoreError, /no model "no-such-model"/);
    await rejects(exportVectors(store, 'no-such-model', { format: 'projector', out: home }), StoreError, /no model "no-such-model"/);
  } finally {
    store.close();
  }
  assert.is(readFileSync(file, 'utf8'), 'previous');
  assert.equal(readdirSync(home).filter((f) => f.includes('.tmp-') || f === 'vectors.tsv'), []);
  // In a child process: before the fix, making the folder under /proc looped forever.
  const impossible = spawnCli('--home', home, 'export', '--format', 'projector', '--out', '/proc/laborspace-x/projector');
  assert.is(impossible.signal, null, 'finished before the time limit');
  assert.match(impossible.stderr, /ENOENT: no such file or directory, mkdir '\/proc\/laborspace-x'/);
});

Cli.after(() => rmSync(home, { recursive: true, force: true }));
Cli.run();

const Checks = suite('shared checks of options');

Checks('should read types from a list or comma-separated text, naming the field when asked', () => {
  assert.equal(checkTypes(['skill', 'firm']), ['skill', 'firm']);
  assert.equal(checkTypes(' occupation, industry ,'), ['occupation', 'industry']);
  assert.is(checkTypes(undefined), undefined, "the caller's default");
  const fails = (types: string | string[], field: string | undefined, message: RegExp) => assertThrowsCode(() => checkTypes(types, field), SpaceError as unknown as ErrorConstructor, 'BAD_OPTION', message);
  fails(['skill', 'planet'], undefined, /^unknown type "planet" \(expected a list of industry, occupation, skill, firm\)$/);
  fails('', 'querystring/types', /^querystring\/types: no types given \(expected a list of /);
  assert.equal(checkTypes([]), [], 'a list may be empty');
  assert.is(checkCount('k', 5, 10), 5);
  assertThrowsCode(() => checkCount('top', 1.5, 10), SpaceError as unknown as ErrorConstructor, 'BAD_OPTION', /^top must be an integer from 1 to 10, got 1\.5$/);
});

Checks.run();
