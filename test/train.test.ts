import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { build } from '../src/build.js';
import { openHomeStore } from '../src/home.js';
import { normalize } from '../src/native.js';
import { LaborSpace } from '../src/space.js';
import { evaluateSpace } from '../src/train/evaluate.js';
import { buildExamples, DEFAULT_KINDS, type PairSet } from '../src/train/examples.js';
import { TUNED_MODEL_ID } from '../src/train/run.js';
import { DEFAULT_TRAIN_CONFIG, embedAll, trainHead } from '../src/train/trainer.js';
import { randomMatrix } from '../src/util/random.js';
import { runCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');

const Trainer = suite('trainHead on a planted structure');

Trainer('should learn to pair noisy copies that the initial head cannot tell apart', () => {
  // 300 anchors and their positives share 12 dimensions; 4 more carry loud independent noise that
  // swamps the identity head's cosine. Training must learn to mute them.
  const dim = 16;
  const n = 300;
  const base = randomMatrix(n, dim, 1);
  const noiseA = randomMatrix(n, dim, 2);
  const noiseP = randomMatrix(n, dim, 3);
  const matrix = new Float32Array(2 * n * dim);
  for (let i = 0; i < n * dim; i++) {
    const loud = i % dim < 4;
    matrix[i] = loud ? 3 * noiseA[i] : base[i];
    matrix[n * dim + i] = loud ? 3 * noiseP[i] : base[i];
  }
  const refs = Array.from({ length: 2 * n }, (_, i) => (i < n ? `skill:a:${i}` : `occupation:p:${i - n}`));
  const pooled = { refs, dim, matrix };
  const pairs = (from: number, to: number): PairSet => ({
    kind: 'planted',
    loss: 'mnrl',
    weight: 1,
    anchors: Int32Array.from({ length: to - from }, (_, i) => from + i),
    positives: Int32Array.from({ length: to - from }, (_, i) => n + from + i),
    targets: new Float32Array(to - from).fill(1),
    negatives: new Int32Array(to - from).fill(-1),
  });
  const identity = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i++) identity[i * dim + i] = 1;
  const initial = { weight: identity, bias: new Float32Array(dim), dimIn: dim, dimOut: dim };
  const test = [pairs(250, 300)];
  const before = evaluateSpace(normalize(embedAll(pooled, initial), dim), dim, refs, test).kinds[0].mrr;
  const result = trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], initial, { ...DEFAULT_TRAIN_CONFIG, steps: 300, batchSize: 64, lr: 3e-3, warmupSteps: 20, evalEvery: 50, patience: 10 });
  const after = evaluateSpace(embedAll(pooled, result.head), dim, refs, test).kinds[0].mrr;
  assert.ok(before < 0.6 && after > before + 0.2, `held-out MRR ${before} -> ${after}`);
  assert.ok(result.bestStep > 0);
});

Trainer.run();

const Examples = suite('buildExamples');

Examples('should hold out whole anchors, seeded, and pick hard negatives for the hierarchy', async () => {
  const home = mkdtempSync(join(tmpdir(), 'laborspace-examples-'));
  try {
    await build(home, { dataDir: FIXTURES, train: false });
    const store = openHomeStore(home);
    const refs = store.entities().map((e) => e.ref);
    const rowOf = new Map(refs.map((r, i) => [r, i]));
    const a = buildExamples(store, rowOf, DEFAULT_KINDS, 0.4, 7);
    const b = buildExamples(store, rowOf, DEFAULT_KINDS, 0.4, 7);
    assert.equal(a, b, 'the same seed gives the same split');
    const anchorsOf = (sets: PairSet[], kind: string) => new Set(sets.filter((s) => s.kind === kind).flatMap((s) => Array.from(s.anchors)));
    for (const kind of ['esco_essential_skill', 'onet_skill']) {
      const train = anchorsOf(a.train, kind);
      for (const held of [...anchorsOf(a.validation, kind), ...anchorsOf(a.test, kind)]) assert.ok(!train.has(held), `${kind}: anchor ${held} in both`);
    }
    const hierarchy = a.train.find((s) => s.kind === 'naics_parent')!;
    assert.is(hierarchy.loss, 'triplet');
    hierarchy.negatives.forEach((n, i) => assert.ok(n >= 0 && n !== hierarchy.positives[i]));
    const importance = a.train.find((s) => s.kind === 'onet_skill')!;
    assert.ok(Math.max(...importance.targets) <= 1 && Math.min(...importance.targets) > 0, 'importance scaled to (0, 1]');
    store.close();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Examples.run();

const Cli = suite('train and eval commands');

Cli('should fine-tune, make the tuned space the active one, report eval, and reuse a finished run', async () => {
  const home = mkdtempSync(join(tmpdir(), 'laborspace-train-'));
  const run = (...argv: string[]) => runCli('--home', home, ...argv);
  try {
    await run('build', '--data', FIXTURES, '--no-train');
    const trained = JSON.parse(await run('--json', 'train', '--steps', '40'));
    assert.ok(trained.runId >= 1);
    assert.ok(trained.base.kinds.length > 0 && trained.base.kinds.length === trained.tuned.kinds.length);
    for (const k of trained.tuned.kinds) assert.ok(k.mrr >= 0 && k.mrr <= 1 && k.recallAt10 >= 0 && k.recallAt10 <= 1, JSON.stringify(k));
    const again = JSON.parse(await run('--json', 'train', '--steps', '40'));
    assert.is(again.runId, trained.runId, 'same data and config: the finished run is reused');
    const evaluated = JSON.parse(await run('--json', 'eval'));
    assert.equal(evaluated.tuned, trained.tuned);
    assert.match(await run('eval'), /relation kind \(held out\)/);
    const space = await LaborSpace.open(home);
    assert.is(space.modelId, TUNED_MODEL_ID);
    const near = await space.near('registered nurse', { types: ['occupation'], k: 3 });
    assert.is(near.results.occupation!.length, 3, 'text queries go through the fine-tuned encoder');
    await space.close();
    try {
      await run('train', '--config', join(home, 'missing.json'));
      assert.unreachable('missing config');
    } catch (e) {
      assert.match((e as Error).message, /missing\.json: ENOENT/);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Cli.run();
