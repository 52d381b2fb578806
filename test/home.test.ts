/** The home folder: moved or copied whole, missing, or impossible to create. */
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { BASE_MODEL_ID, TUNED_MODEL_ID } from '../src/active-model.js';
import { build } from '../src/build.js';
import { modelFile } from '../src/encoder/model-cache.js';
import { openBuiltHomeStore } from '../src/home.js';
import { SpaceError } from '../src/errors.js';
import { LaborSpace } from '../src/space.js';
import { assertRejects, beforeAll, runCli, spawnCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const root = mkdtempSync(join(tmpdir(), 'laborspace-homes-'));

const Moved = suite('a home moved or copied');

beforeAll(Moved, async () => {
  await build(join(root, 'home'), { dataDir: FIXTURES, threads: 2, train: { encoder: { steps: 4, batchSize: 8, headSteps: 20 } } });
});

async function nearestOccupation(home: string): Promise<{ modelId: string; encoderDir: string; ref: string }> {
  const space = await LaborSpace.open(home);
  try {
    const { results } = await space.near('registered nurse', { types: ['occupation'], k: 1 });
    return { modelId: space.modelId, encoderDir: (await space.encoderInstance()).dir, ref: results.occupation![0].ref };
  } finally {
    await space.close();
  }
}

Moved('should answer text queries with the fine-tuned model after the home is moved, and a copy should use its own', async () => {
  const before = await nearestOccupation(join(root, 'home'));
  assert.is(before.modelId, TUNED_MODEL_ID);
  const moved = join(root, 'moved');
  renameSync(join(root, 'home'), moved);
  const after = await nearestOccupation(moved);
  assert.is(after.ref, before.ref);
  assert.ok(after.encoderDir.startsWith(join(moved, 'models')), after.encoderDir);
  const copy = join(root, 'copy');
  cpSync(moved, copy, { recursive: true });
  rmSync(moved, { recursive: true });
  const copied = await nearestOccupation(copy);
  assert.ok(copied.encoderDir.startsWith(join(copy, 'models')), `the copy's own model: ${copied.encoderDir}`);
  assert.is(copied.ref, before.ref);
});

Moved.run();

const Missing = suite('a missing home');

Missing('should be refused by the commands that read a home, which do not create it', async () => {
  const home = join(root, 'never-built');
  for (const argv of [['near', 'nurse'], ['show', 'occupation:onet:29-1141.00'], ['axis', 'manufacturing-healthcare'], ['export'], ['eval'], ['index'], ['train'], ['map']]) {
    try {
      await runCli('--home', home, ...argv);
      assert.unreachable(argv.join(' '));
    } catch (e) {
      assert.match((e as Error).message, `no Labor Space home at ${home}: run \`laborspace build\``, argv.join(' '));
    }
    assert.not.ok(existsSync(home), `${argv[0]} created ${home}`);
  }
});

Missing('should fail fast, naming the folder, where the home cannot be created', () => {
  // In a child process: before the fix, creating a folder under /proc looped forever.
  const made = spawnCli('--home', '/proc/laborspace-x', 'ingest', '--data', FIXTURES);
  assert.is(made.signal, null, 'finished before the time limit');
  assert.match(made.stderr, /cannot create the Labor Space home \/proc\/laborspace-x: ENOENT/);
  const read = spawnCli('--home', '/proc/laborspace-x', 'near', 'nurse');
  assert.match(read.stderr, /no Labor Space home at \/proc\/laborspace-x/);
});

Missing.run();

const Damaged = suite('a damaged home, repaired by build');
const damaged = join(root, 'damaged');
const training = { encoder: { steps: 4, batchSize: 8, headSteps: 20 } };
const NURSE = 'occupation:onet:29-1141.00';

/** Builds the damaged home again, returning what build noted. */
async function rebuild(train: typeof training | false = training): Promise<string[]> {
  const notes: string[] = [];
  await build(damaged, { dataDir: FIXTURES, threads: 2, train, onNote: (m) => notes.push(m) });
  return notes;
}

/** Runs `use` on the home's store (opened for this only). */
function withStore<T>(use: (store: ReturnType<typeof openBuiltHomeStore>) => T): T {
  const store = openBuiltHomeStore(damaged);
  try {
    return use(store);
  } finally {
    store.close();
  }
}

/** Overwrites the stored vector of `ref` for `modelId` with NaN. */
function poison(modelId: string, ref: string): void {
  withStore((store) => {
    const dim = store.model(modelId)!.dim;
    const id = store.entity(ref)!.id;
    store.db.prepare('UPDATE vectors SET data = ? WHERE model_id = ? AND entity_id = ?').run(Buffer.from(new Float32Array(dim).fill(NaN).buffer), modelId, id);
  });
}

const tunedDir = () => withStore((store) => String(store.model(TUNED_MODEL_ID)!.extra.dir));
const storedVector = (modelId: string, ref: string) => withStore((store) => {
  const set = store.vectors(modelId, { type: 'occupation' });
  const row = set.refs.indexOf(ref);
  return set.matrix.slice(row * set.dim, (row + 1) * set.dim);
});

beforeAll(Damaged, () => build(damaged, { dataDir: FIXTURES, threads: 2, train: training }));

Damaged('should train again when the fine-tuned model no longer matches its checksums, and then answer text queries', async () => {
  const before = await nearestOccupation(damaged);
  assert.ok(existsSync(join(tunedDir(), 'laborspace-model.json')), 'the fine-tuned model has a manifest');
  const onnx = join(tunedDir(), modelFile(false));
  const bytes = readFileSync(onnx);
  bytes.fill(7, 0, 64);
  writeFileSync(onnx, bytes);
  await assertRejects(nearestOccupation(damaged), SpaceError, /^cannot load the encoder of use-lite-tuned from .*use-lite-tuned-[0-9a-f]{12} \(.+\): run `laborspace build --home .*damaged`, which repairs it$/, 'NOT_BUILT');
  const notes = await rebuild();
  assert.ok(notes.some((n) => /^the fine-tuned model of training run \d+ cannot be used \(onnx\/model\.onnx does not match its checksum\): training again$/.test(n)), notes.join('\n'));
  assert.not.ok(notes.some((n) => /reusing/.test(n)), notes.join('\n'));
  const after = await nearestOccupation(damaged);
  assert.is(after.modelId, TUNED_MODEL_ID);
  assert.is(after.ref, before.ref);
  assert.ok((await rebuild()).some((n) => /already fitted this data and config: reusing it/.test(n)), 'the repaired model is reused');
});

Damaged('should embed again an entity whose fine-tuned vector is NaN, and then answer queries', async () => {
  const good = storedVector(TUNED_MODEL_ID, NURSE);
  poison(TUNED_MODEL_ID, NURSE);
  await assertRejects(nearestOccupation(damaged), RangeError, /^vectors row \d+, column 0 is not finite$/);
  const notes = await rebuild();
  assert.ok(notes.includes(`1 vectors of ${TUNED_MODEL_ID} are not finite (${NURSE}): embedding those entities again`), notes.join('\n'));
  const repaired = storedVector(TUNED_MODEL_ID, NURSE);
  let dot = 0;
  for (let i = 0; i < good.length; i++) dot += good[i] * repaired[i];
  assert.ok(dot > 0.999, `the fine-tuned encoder's vector again: cosine ${dot}`);
  assert.is((await nearestOccupation(damaged)).modelId, TUNED_MODEL_ID);
});

Damaged('should encode again a base vector whose cached embedding is NaN', async () => {
  const good = storedVector(BASE_MODEL_ID, NURSE);
  poison(BASE_MODEL_ID, NURSE);
  withStore((store) => {
    const nan = Buffer.from(new Float32Array(good.length).fill(NaN).buffer);
    assert.is(store.db.prepare('UPDATE embedding_cache SET data = ?').run(nan).changes > 0, true);
  });
  const summary = await build(damaged, { dataDir: FIXTURES, threads: 2, train: training });
  const texts = withStore((store) => new Set(store.entities().map((e) => e.text)).size);
  assert.is(summary.encode.encoded, texts, 'every text encoded again: no damaged cache entry is used');
  assert.equal(Array.from(storedVector(BASE_MODEL_ID, NURSE)), Array.from(good));
});

Damaged('should refuse to embed with an encoder that is not the fine-tuned one', async () => {
  poison(TUNED_MODEL_ID, NURSE);
  const base = withStore((store) => String(store.model(BASE_MODEL_ID)!.extra.dir));
  copyFileSync(join(base, modelFile(false)), join(tunedDir(), modelFile(false)));
  await assertRejects(rebuild(false), Error, /^the encoder in .*use-lite-tuned-[0-9a-f]{12} is not the one use-lite-tuned was embedded with: run `laborspace train`$/);
});

Damaged.after(() => rmSync(root, { recursive: true, force: true }));
Damaged.run();
