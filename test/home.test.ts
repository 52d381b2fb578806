/** The home folder: moved or copied whole, missing, or impossible to create. */
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { build } from '../src/build.js';
import { LaborSpace } from '../src/space.js';
import { TUNED_MODEL_ID } from '../src/train/run.js';
import { beforeAll, runCli, spawnCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const root = mkdtempSync(join(tmpdir(), 'laborspace-homes-'));

const Moved = suite('a home moved or copied');

beforeAll(Moved, async () => {
  await build(join(root, 'home'), { dataDir: FIXTURES, threads: 2, train: { encoder: { steps: 4, batchSize: 8, headSteps: 20 } } });
});
Moved.after(() => rmSync(root, { recursive: true, force: true }));

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
