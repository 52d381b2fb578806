import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { MIGRATIONS } from '../src/store/schema.js';
import { type EntityInput, formatRef, parseRef, Store, StoreError, type StoreErrorCode } from '../src/store/index.js';

const nurse: EntityInput = {
  type: 'occupation',
  source: 'onet',
  code: '29-1141.00',
  title: 'Registered Nurses',
  text: 'Registered Nurses. Assess patient health problems and needs.',
  version: '29.2',
};
const hospital: EntityInput = {
  type: 'industry',
  source: 'naics',
  code: '622110',
  title: 'General Medical and Surgical Hospitals',
  text: 'General Medical and Surgical Hospitals. This industry comprises establishments ...',
  extra: { level: 6 },
};
const care: EntityInput = { type: 'skill', source: 'esco', code: 'abc-123', title: 'patient care', text: 'care for patients' };

function expectStoreError(fn: () => unknown, code: StoreErrorCode, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, StoreError, `expected StoreError, got ${e}`);
    assert.is((e as StoreError).code, code, (e as Error).message);
    assert.match((e as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

function seeded(): Store {
  const store = Store.open(':memory:');
  store.upsertEntities([nurse, hospital, care]);
  return store;
}

const Refs = suite('refs');

Refs('should parse and format TYPE:SOURCE:CODE, keeping colons inside the code', () => {
  assert.equal(parseRef('industry:naics:622110'), { type: 'industry', source: 'naics', code: '622110' });
  assert.equal(parseRef('firm:wiki:a:b'), { type: 'firm', source: 'wiki', code: 'a:b' });
  assert.is(formatRef({ type: 'skill', source: 'onet', code: '2.A.1.a' }), 'skill:onet:2.A.1.a');
  for (const bad of ['industry:622110', 'planet:naics:1', 'skill::x', 'skill:esco:', ''])
    assert.is(parseRef(bad), undefined, bad);
});

Refs.run();

const Entities = suite('entities');

Entities('should round-trip entities and count inserts, updates and unchanged rows', () => {
  const store = Store.open(':memory:');
  assert.equal(store.upsertEntities([nurse, hospital]), { inserted: 2, updated: 0, unchanged: 0 });
  const got = store.entity('occupation:onet:29-1141.00')!;
  assert.is(got.title, 'Registered Nurses');
  assert.is(got.version, '29.2');
  assert.is(got.ref, 'occupation:onet:29-1141.00');
  assert.equal(store.entity('industry:naics:622110')!.extra, { level: 6 });
  assert.equal(store.upsertEntities([nurse, { ...hospital, title: 'Hospitals' }]), { inserted: 0, updated: 1, unchanged: 1 });
  assert.is(store.entity('industry:naics:622110')!.title, 'Hospitals');
  assert.is(store.entity('industry:naics:999999'), undefined);
  assert.equal(store.entities({ type: 'industry' }).map((e) => e.code), ['622110']);
  assert.equal(store.entityCounts(), [
    { type: 'industry', source: 'naics', count: 1 },
    { type: 'occupation', source: 'onet', count: 1 },
  ]);
  store.close();
});

Entities('should reject invalid entities and duplicates without writing any of the batch', () => {
  const store = Store.open(':memory:');
  expectStoreError(() => store.upsertEntities([hospital, { ...nurse, text: '   ' }]), 'INVALID_ENTITY', /entity 1 .*text is empty/);
  expectStoreError(() => store.upsertEntities([{ ...nurse, type: 'planet' as 'skill' }]), 'INVALID_ENTITY', /type must be one of industry, occupation, skill, firm/);
  expectStoreError(() => store.upsertEntities([{ ...nurse, source: 'on:et' }]), 'INVALID_ENTITY', /source must not contain/);
  expectStoreError(() => store.upsertEntities([{ ...nurse, extra: [] as unknown as Record<string, unknown> }]), 'INVALID_ENTITY', /extra must be an object/);
  expectStoreError(() => store.upsertEntities([nurse, hospital, { ...nurse, title: 'RN' }]), 'DUPLICATE_ENTITY', /entities 0 and 2 are both occupation:onet:29-1141.00/);
  assert.equal(store.entityCounts(), []);
  expectStoreError(() => store.entity('nurse'), 'INVALID_REF', /"nurse" is not a reference of the form TYPE:SOURCE:CODE/);
  store.close();
});

Entities('should resolve full and short references, and suggest close matches for unknown ones', () => {
  const store = seeded();
  store.upsertEntities([{ ...nurse, source: 'other' }]);
  assert.is(store.resolve('industry:622110').ref, 'industry:naics:622110');
  assert.is(store.resolve('occupation:onet:29-1141.00').title, 'Registered Nurses');
  expectStoreError(() => store.resolve('occupation:29-1141.00'), 'AMBIGUOUS_REF', /ambiguous: occupation:onet:29-1141.00, occupation:other:29-1141.00/);
  expectStoreError(() => store.resolve('industry:naics:622111'), 'UNKNOWN_ENTITY', /no entity industry:naics:622111; did you mean industry:naics:622110 \(General Medical and Surgical Hospitals\)\?/);
  expectStoreError(() => store.resolve('skill:zzz'), 'UNKNOWN_ENTITY', /^no entity skill:zzz$/);
  expectStoreError(() => store.resolve('planet:x'), 'INVALID_REF', /TYPE one of industry, occupation, skill, firm/);
  store.close();
});

Entities.run();

const Relations = suite('relations');

Relations('should store relations with kind, weight and provenance, and upsert repeats', () => {
  const store = seeded();
  store.addRelations([
    { source: 'occupation:onet:29-1141.00', target: 'skill:esco:abc-123', kind: 'requires', weight: 4.5, provenance: 'onet:skills' },
    { source: 'industry:naics:622110', target: 'occupation:onet:29-1141.00', kind: 'employs', weight: 0.3 },
  ]);
  store.addRelations([{ source: 'occupation:onet:29-1141.00', target: 'skill:esco:abc-123', kind: 'requires', weight: 5, provenance: 'v2' }]);
  assert.equal(store.relations('occupation:onet:29-1141.00', { direction: 'out' }), [
    { source: 'occupation:onet:29-1141.00', target: 'skill:esco:abc-123', kind: 'requires', weight: 5, provenance: 'v2' },
  ]);
  assert.is(store.relations('occupation:onet:29-1141.00').length, 2);
  assert.is(store.relations('occupation:onet:29-1141.00', { kind: 'employs', direction: 'in' })[0].source, 'industry:naics:622110');
  assert.equal(store.relationCounts(), [{ kind: 'employs', count: 1 }, { kind: 'requires', count: 1 }]);
  store.close();
});

Relations('should reject unknown endpoints and bad weights, rolling back the whole batch', () => {
  const store = seeded();
  const good = { source: 'occupation:onet:29-1141.00', target: 'skill:esco:abc-123', kind: 'requires' };
  expectStoreError(() => store.addRelations([good, { ...good, target: 'skill:esco:nope' }]), 'UNKNOWN_ENTITY', /relation 1 \(requires\): no entity skill:esco:nope/);
  expectStoreError(() => store.addRelations([{ ...good, weight: NaN }]), 'INVALID_RELATION', /weight must be a finite number/);
  expectStoreError(() => store.addRelations([{ ...good, kind: '' }]), 'INVALID_RELATION', /kind is empty/);
  expectStoreError(() => store.addRelations([{ ...good, source: 'bad' }]), 'INVALID_REF', /relation 0 \(requires\): "bad" is not a reference/);
  assert.equal(store.relationCounts(), []);
  store.close();
});

Relations.run();

const Vectors = suite('vectors');

Vectors('should round-trip vectors bit for bit per model and type', () => {
  const store = seeded();
  store.registerModel({ id: 'm1', name: 'test model', dim: 3, hash: 'abc' });
  const a = Float32Array.from([0.1, -2, 3.5]);
  const b = Float32Array.from([1e-30, 0, -0]);
  store.putVectors('m1', [
    { ref: 'industry:naics:622110', vector: b },
    { ref: 'occupation:onet:29-1141.00', vector: a, textHash: 'h1' },
  ]);
  const all = store.vectors('m1');
  assert.equal(all.refs, ['occupation:onet:29-1141.00', 'industry:naics:622110']);
  assert.equal([...all.matrix], [...a, ...b]);
  assert.is(all.dim, 3);
  const industries = store.vectors('m1', { type: 'industry' });
  assert.equal(industries.refs, ['industry:naics:622110']);
  assert.equal([...industries.matrix], [...b]);
  assert.is(store.model('m1')!.hash, 'abc');
  // Writing the same vectors again leaves their rows alone; a changed one is written anew.
  const rowids = () => store.db.prepare<[], { rowid: number }>("SELECT rowid FROM vectors WHERE model_id = 'm1' ORDER BY entity_id").all().map((r) => r.rowid);
  const before = rowids();
  store.putVectors('m1', [
    { ref: 'industry:naics:622110', vector: b.slice() },
    { ref: 'occupation:onet:29-1141.00', vector: a.slice(), textHash: 'h1' },
  ]);
  assert.equal(rowids(), before);
  store.putVectors('m1', [{ ref: 'occupation:onet:29-1141.00', vector: a.slice(), textHash: 'h2' }]);
  store.putVectors('m1', [{ ref: 'industry:naics:622110', vector: Float32Array.from([1, 2, 3]) }]);
  const after = rowids();
  assert.ok(after.every((r, i) => r !== before[i]) && Math.max(...after) > Math.max(...before), `${before} -> ${after}`);
  assert.equal([...store.vectors('m1').matrix], [...a, 1, 2, 3]);
  store.close();
});

Vectors('should reject wrong dimensions, non-finite values, unknown models and entities', () => {
  const store = seeded();
  store.registerModel({ id: 'm1', name: 'test model', dim: 3 });
  const ref = 'skill:esco:abc-123';
  expectStoreError(() => store.putVectors('m1', [{ ref, vector: new Float32Array(4) }]), 'DIMENSION_MISMATCH', /has 4 values, model m1 has dim 3/);
  expectStoreError(() => store.putVectors('m1', [{ ref, vector: [1, 2, 3] as unknown as Float32Array }]), 'DIMENSION_MISMATCH', /must be a Float32Array/);
  expectStoreError(() => store.putVectors('m1', [{ ref, vector: Float32Array.from([1, NaN, 0]) }]), 'NON_FINITE', /value 1 is NaN/);
  expectStoreError(() => store.putVectors('m2', [{ ref, vector: new Float32Array(3) }]), 'UNKNOWN_MODEL', /no model "m2"/);
  expectStoreError(() => store.putVectors('m1', [{ ref: 'skill:esco:zzz', vector: new Float32Array(3) }]), 'UNKNOWN_ENTITY', /vector 0: no entity skill:esco:zzz/);
  expectStoreError(() => store.registerModel({ id: 'm1', name: 'x', dim: 5 }), 'DIMENSION_MISMATCH', /registered with dim 3, not 5/);
  expectStoreError(() => store.registerModel({ id: 'm3', name: 'x', dim: 0 }), 'INVALID_MODEL', /dim must be a positive integer/);
  assert.is(store.vectors('m1').refs.length, 0);
  store.close();
});

Vectors.run();

const Runs = suite('runs');

Runs('should record a run from start to finish with config and metrics', () => {
  const store = seeded();
  store.registerModel({ id: 'm1', name: 'test', dim: 2 });
  const id = store.startRun({ kind: 'train', modelId: 'm1', config: { lr: 0.001 }, dataHash: 'd1' });
  assert.is(store.runs()[0].status, 'running');
  store.finishRun(id, { status: 'done', metrics: { mrr: 0.42 } });
  const [run] = store.runs({ kind: 'train' });
  assert.equal(run.config, { lr: 0.001 });
  assert.equal(run.metrics, { mrr: 0.42 });
  assert.is(run.status, 'done');
  assert.ok(run.finishedAt);
  expectStoreError(() => store.finishRun(999, { status: 'failed' }), 'UNKNOWN_RUN', /no run 999/);
  expectStoreError(() => store.startRun({ kind: 'train', modelId: 'nope' }), 'UNKNOWN_MODEL', /no model "nope"/);
  store.close();
});

Runs('should mark a run whose process has ended as interrupted when the store is opened', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const path = join(dir, 'space.db');
    const store = Store.open(path);
    const killed = store.startRun({ kind: 'train' });
    const alive = store.startRun({ kind: 'train' });
    store.db.prepare('UPDATE runs SET pid = ? WHERE id = ?').run(spawnSync('true').pid, killed); // a process that has ended
    store.close();
    const again = Store.open(path);
    assert.equal(again.runs().map((r) => [r.id, r.status]), [[killed, 'interrupted'], [alive, 'running']]);
    assert.ok(again.runs()[0].finishedAt);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Runs('should say that another process holds the home when the store is locked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const path = join(dir, 'space.db');
    const writer = Store.open(path);
    const other = Store.open(path);
    other.db.pragma('busy_timeout = 50');
    const killed = writer.startRun({ kind: 'train' });
    writer.db.prepare('UPDATE runs SET pid = ? WHERE id = ?').run(spawnSync('true').pid, killed);
    writer.db.exec('BEGIN IMMEDIATE');
    expectStoreError(() => other.upsertEntities([nurse]), 'LOCKED', /space\.db is locked: another process holds this Labor Space home/);
    expectStoreError(() => other.startRun({ kind: 'train' }), 'LOCKED', /another process holds this Labor Space home/);
    // Opening for reading still works; the interrupted run is left to mark at a later open.
    const reader = Store.open(path);
    assert.is(reader.runs()[0].status, 'running');
    reader.close();
    writer.db.exec('ROLLBACK');
    other.upsertEntities([nurse]);
    writer.close();
    other.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Runs.run();

const Migrations = suite('migrations');

Migrations('should migrate a new file store, keep data on reopen, and use WAL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const path = join(dir, 'space.db');
    const store = Store.open(path);
    assert.is(store.schemaVersion, MIGRATIONS.length);
    assert.is(store.db.pragma('journal_mode', { simple: true }), 'wal');
    store.upsertEntities([nurse]);
    store.close();
    const again = Store.open(path);
    assert.is(again.entity('occupation:onet:29-1141.00')!.title, 'Registered Nurses');
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Migrations('should refuse a store written by a newer schema', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const path = join(dir, 'space.db');
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expectStoreError(() => Store.open(path), 'SCHEMA_TOO_NEW', /newer than this laborspace knows/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Migrations('should keep model folders inside the home relative to it, so that the home can move', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const store = Store.open(join(dir, 'space.db'));
    store.registerModel({ id: 'inside', name: 'm', dim: 2, extra: { dir: join(dir, 'models', 'm1'), quantized: false } });
    store.registerModel({ id: 'outside', name: 'm', dim: 2, extra: { dir: '/opt/models/m2' } });
    const raw = (id: string) => JSON.parse(store.db.prepare<[string], { extra: string }>('SELECT extra FROM models WHERE id = ?').get(id)!.extra);
    assert.equal(raw('inside'), { dir: join('models', 'm1'), quantized: false });
    assert.is(raw('outside').dir, '/opt/models/m2');
    store.close();
    const moved = `${dir}-moved`;
    renameSync(dir, moved);
    try {
      const again = Store.open(join(moved, 'space.db'));
      assert.is(again.model('inside')!.extra.dir, join(moved, 'models', 'm1'));
      assert.is(again.model('outside')!.extra.dir, '/opt/models/m2');
      again.close();
    } finally {
      renameSync(moved, dir);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Migrations('should migrate a store of schema 2: absolute model folders in the home (or copied with it) become relative, unfinished runs interrupted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'laborspace-store-'));
  try {
    const path = join(dir, 'space.db');
    const db = new Database(path);
    db.exec(MIGRATIONS[0]);
    db.exec(MIGRATIONS[1]);
    db.pragma('user_version = 2');
    const model = db.prepare('INSERT INTO models (id, name, dim, extra) VALUES (?, ?, ?, ?)');
    model.run('m', 'm', 2, JSON.stringify({ dir: join(dir, 'models', 'm1') }));
    // A home copied from /old/home: its model folders came with it (m2), or did not (m3).
    mkdirSync(join(dir, 'models', 'm2'), { recursive: true });
    model.run('copied', 'm', 2, JSON.stringify({ dir: '/old/home/models/m2' }));
    model.run('elsewhere', 'm', 2, JSON.stringify({ dir: '/old/home/models/m3' }));
    db.prepare("INSERT INTO runs (kind, status) VALUES ('train', 'running')").run();
    db.close();
    const store = Store.open(path);
    assert.is(store.schemaVersion, MIGRATIONS.length);
    const stored = (id: string) => JSON.parse(store.db.prepare<[string], { extra: string }>('SELECT extra FROM models WHERE id = ?').get(id)!.extra).dir;
    assert.equal(['m', 'copied', 'elsewhere'].map(stored), [join('models', 'm1'), join('models', 'm2'), '/old/home/models/m3']);
    assert.is(store.model('m')!.extra.dir, join(dir, 'models', 'm1'));
    assert.is(store.model('copied')!.extra.dir, join(dir, 'models', 'm2'));
    assert.is(store.runs()[0].status, 'interrupted');
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Migrations.run();
