import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { TUNED_MODEL_ID } from '../src/active-model.js';
import { build } from '../src/build.js';
import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { openHomeStore } from '../src/home.js';
import { normalize } from '../src/native.js';
import { LaborSpace } from '../src/space.js';
import { evaluateSpace } from '../src/train/evaluate.js';
import { buildExamples, DEFAULT_KINDS, type PairSet } from '../src/train/examples.js';
import { trainStep } from '../src/train/run.js';
import { CheckpointError, readCheckpoint, writeCheckpoint } from '../src/train/checkpoint.js';
import { DEFAULT_TRAIN_CONFIG, embedAll, headTensors, initialHead, trainHead, type TrainState } from '../src/train/trainer.js';
import { randomMatrix } from '../src/util/random.js';
import { assertRejects, runCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');

function writeConfig(home: string, config: Record<string, unknown>): string {
  const path = join(home, 'train.json');
  writeFileSync(path, JSON.stringify(config));
  return path;
}

const Trainer = suite('trainHead on a planted structure');

/**
 * 300 anchors and their positives share 12 dimensions; 4 more carry loud independent noise that
 * swamps the identity head's cosine. Training must learn to mute them.
 */
function planted() {
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
  return { dim, refs, pooled, pairs, initial };
}

Trainer('should learn to pair noisy copies that the initial head cannot tell apart', () => {
  const { dim, refs, pooled, pairs, initial } = planted();
  const test = [pairs(250, 300)];
  const before = evaluateSpace(normalize(embedAll(pooled, initial), dim), dim, refs, test).kinds[0].mrr;
  const result = trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], initial, { ...DEFAULT_TRAIN_CONFIG, steps: 300, batchSize: 64, lr: 3e-3, warmupSteps: 20, evalEvery: 50, patience: 10 });
  const after = evaluateSpace(embedAll(pooled, result.head), dim, refs, test).kinds[0].mrr;
  assert.ok(before < 0.6 && after > before + 0.2, `held-out MRR ${before} -> ${after}`);
  assert.ok(result.bestStep > 0);
});

Trainer('should learn the same with only a low-rank adapter, leaving the dense layer as it was', () => {
  const { dim, refs, pooled, pairs, initial } = planted();
  const test = [pairs(250, 300)];
  const before = evaluateSpace(embedAll(pooled, initial), dim, refs, test).kinds[0].mrr;
  const config = { ...DEFAULT_TRAIN_CONFIG, steps: 300, batchSize: 64, adapterRank: 4, adapterLr: 1e-2, trainDense: false, warmupSteps: 20, evalEvery: 50, patience: 10 };
  const result = trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], initialHead(initial, 4, 7), config);
  const after = evaluateSpace(embedAll(pooled, result.head), dim, refs, test).kinds[0].mrr;
  assert.ok(after > before + 0.2, `held-out MRR ${before} -> ${after}`);
  assert.equal(Array.from(result.head.weight), Array.from(initial.weight), 'the frozen dense layer is untouched');
  assert.is(result.head.adapter!.rank, 4);
  for (const bad of [17, -1, 2.5]) assert.throws(() => initialHead(initial, bad, 1), new RegExp(`adapterRank must be an integer from 0 to 16, got ${bad}`));
  assert.throws(() => trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], initial, { ...config, adapterRank: 0 }), /trainDense false needs an adapter/);
});

Trainer('should end with the same head, bit for bit, when resumed from a checkpoint, with or without an adapter', () => {
  const { pooled, pairs, initial } = planted();
  for (const rank of [0, 3]) {
    const config = { ...DEFAULT_TRAIN_CONFIG, steps: 120, batchSize: 32, lr: 3e-3, warmupSteps: 10, evalEvery: 30, patience: 10, adapterRank: rank };
    const start = initialHead(initial, rank, 5);
    const states: TrainState[] = [];
    const whole = trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], start, config, { onCheckpoint: (s) => states.push(s) });
    assert.equal(states.map((s) => s.step), [30, 60, 90, 120]);
    // Stopped after step 60: the checkpoint goes through its file and the run goes on from it.
    const home = mkdtempSync(join(tmpdir(), 'laborspace-ckpt-'));
    try {
      const path = join(home, 'run.ckpt');
      writeCheckpoint(path, 'key', states[1]);
      const resumed = trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], start, config, {}, readCheckpoint(path, 'key'));
      assert.equal(headTensors(resumed.head).map((t) => Array.from(t)), headTensors(whole.head).map((t) => Array.from(t)));
      assert.is(headTensors(whole.head).length, rank ? 4 : 2);
      assert.equal([resumed.bestStep, resumed.bestMrr, resumed.stepsRun], [whole.bestStep, whole.bestMrr, whole.stepsRun]);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }
});

Trainer.run();

const Evaluate = suite('evaluateSpace');

Evaluate('should count NAICS 31-33, 44-45 and 48-49 as one sector each in sector purity', () => {
  // Three tight clusters of 12 six-digit industries, each spread over the two-digit codes of one sector.
  const sectors = [['31', '32', '33'], ['44', '45'], ['48', '49']];
  const codes = sectors.flatMap((twos) => Array.from({ length: 12 }, (_, i) => `${twos[i % twos.length]}${1000 + i}`));
  const dim = 4;
  const noise = randomMatrix(codes.length, dim, 9);
  const embeddings = normalize(Float32Array.from({ length: codes.length * dim }, (_, j) => (Math.floor(j / dim / 12) === j % dim ? 1 : 0) + 0.01 * noise[j]), dim);
  const metrics = evaluateSpace(embeddings, dim, codes.map((c) => `industry:naics:${c}`), []);
  assert.is(metrics.sectorPurity, 1, 'every neighbour is in its own sector');
});

Evaluate.run();

const Checkpoints = suite('checkpoints');

Checkpoints('should round-trip a state and refuse damaged, foreign or other-run files', () => {
  const { pooled, pairs, initial } = planted();
  let state: TrainState | undefined;
  trainHead(pooled, [pairs(0, 200)], [pairs(200, 250)], initial, { ...DEFAULT_TRAIN_CONFIG, steps: 20, batchSize: 16, evalEvery: 10 }, { onCheckpoint: (s) => (state = s) });
  const home = mkdtempSync(join(tmpdir(), 'laborspace-ckpt-'));
  try {
    const path = join(home, 'run.ckpt');
    assert.is(readCheckpoint(path, 'key'), undefined, 'no checkpoint yet');
    writeCheckpoint(path, 'key', state!);
    assert.equal(readCheckpoint(path, 'key'), state);
    assert.throws(() => readCheckpoint(path, 'other'), (e: Error) => e instanceof CheckpointError && /another configuration/.test(e.message));
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(path, bytes);
    assert.throws(() => readCheckpoint(path, 'key'), (e: Error) => e instanceof CheckpointError && /checksum mismatch/.test(e.message));
    writeFileSync(path, bytes.subarray(0, bytes.length - 8));
    assert.throws(() => readCheckpoint(path, 'key'), (e: Error) => e instanceof CheckpointError && /truncated/.test(e.message));
    writeFileSync(path, 'not a checkpoint at all');
    assert.throws(() => readCheckpoint(path, 'key'), (e: Error) => e instanceof CheckpointError && /not a training checkpoint/.test(e.message));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Checkpoints.run();

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
    assert.is(hierarchy.loss, 'mnrl');
    assert.ok(hierarchy.negatives.some((n) => n >= 0) && hierarchy.negatives.some((n) => n < 0), 'siblings where the parent has a sibling');
    hierarchy.negatives.forEach((n, i) => assert.ok(n !== hierarchy.positives[i]));
    const triplets = buildExamples(store, rowOf, { naics_parent: { loss: 'triplet', weight: 1 } }, 0.4, 7).train[0];
    triplets.negatives.forEach((n, i) => assert.ok(n >= 0 && n !== triplets.positives[i], 'triplets train only where a sibling exists'));
    const importance = a.train.find((s) => s.kind === 'onet_skill')!;
    assert.ok(importance.anchors.length > 0 && Math.min(...importance.targets) >= 3.5, 'only the important skills');
    const skills = new Set(refs.filter((r) => r.startsWith('skill:')).map((r) => rowOf.get(r)));
    assert.ok(importance.pool!.length === skills.size && importance.pool!.every((r) => skills.has(r)), 'the pool is every skill');
    const weighted = buildExamples(store, rowOf, { onet_skill: { loss: 'cosent', weight: 1 } }, 0.4, 7).train[0];
    assert.ok(Math.max(...weighted.targets) <= 1 && Math.min(...weighted.targets) > 0, 'CoSENT targets scaled to (0, 1]');
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
    await assertRejects(run('eval'), Error, /has no finished training run: run `laborspace train`/);
    const trained = JSON.parse(await run('--json', 'train', '--steps', '8'));
    assert.ok(trained.runId >= 1);
    assert.is(trained.tune, 'full', 'the whole encoder by default');
    assert.ok(trained.base.kinds.length > 0 && trained.base.kinds.length === trained.tuned.kinds.length);
    for (const k of trained.tuned.kinds) assert.ok(k.mrr >= 0 && k.mrr <= 1 && k.recallAt10 >= 0 && k.recallAt10 <= 1, JSON.stringify(k));
    const again = JSON.parse(await run('--json', 'train', '--steps', '8'));
    assert.is(again.runId, trained.runId, 'same data and config: the finished run is reused');
    // Recomputed from the stored vectors: the tuned space is the one training evaluated; the base
    // vectors come from the ONNX encoder rather than the native head, equal to float rounding.
    const evaluated = JSON.parse(await run('--json', 'eval'));
    assert.equal(evaluated.tuned, trained.tuned);
    assert.ok(evaluated.entities > 0 && evaluated.runId === trained.runId);
    evaluated.base.kinds.forEach((k: { mrr: number }, i: number) => assert.ok(Math.abs(k.mrr - trained.base.kinds[i].mrr) < 0.01, `base MRR ${k.mrr} vs ${trained.base.kinds[i].mrr}`));
    assert.match(await run('eval'), /relation kind \(held out\)/);
    const space = await LaborSpace.open(home);
    assert.is(space.modelId, TUNED_MODEL_ID);
    const near = await space.near('registered nurse', { types: ['occupation'], k: 3 });
    assert.is(near.results.occupation!.length, 3, 'text queries go through the fine-tuned encoder');
    // Every fine-tuned layer is in the ONNX model: it embeds text as the native encoder did.
    await assertEmbedsAsStored(space, 0.9999);
    // And its int8 variant, written beside it.
    const int8 = await SentenceEncoder.load(String(space.store.model(TUNED_MODEL_ID)!.extra.dir), { quantized: true });
    await assertEmbedsAsStored(space, 0.99, async (texts) => (await int8.encode(texts)).vectors);
    await int8.close();
    await space.close();
    const exportedLines = async (...flags: string[]) => {
      const out = join(home, 'export.jsonl');
      await run('export', '--types', 'occupation', '--out', out, ...flags);
      return readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { ref: string; vector: number[] });
    };
    const exported = await exportedLines();
    const base = await exportedLines('--model', 'base');
    const reopened = await LaborSpace.open(home);
    assert.ok(exported[0].vector.every((v, j) => Math.abs(v - reopened.vectorOf(exported[0].ref)[j]) < 1e-6), 'export writes the vectors near queries');
    assert.ok(base[0].vector.some((v, j) => Math.abs(v - exported[0].vector[j]) > 1e-4), '--model base writes the pretrained ones');
    await reopened.close();
    // A head-only run on the same split: eval shows it beside the full one.
    await run('--json', 'train', '--tune', 'head', '--steps', '20');
    const both = JSON.parse(await run('--json', 'eval'));
    assert.equal([both.tune, both.other.tune, both.other.runId], ['head', 'full', trained.runId]);
    assert.equal(both.other.tuned, trained.tuned);
    assert.match(await run('eval'), /MRR head.+MRR full \(run \d+, as recorded\)/);
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

/** The space's encoder embeds entity texts as their stored vectors are (cosine >= min). */
async function assertEmbedsAsStored(space: LaborSpace, min: number, embed = (texts: string[]) => space.embed(texts)): Promise<void> {
  const refs = ['occupation', 'skill', 'industry'].map((type) => space.store.entities({ type: type as 'skill' })[0].ref);
  const embedded = await embed(refs.map((r) => space.entity(r).text));
  refs.forEach((ref, i) => {
    const stored = space.vectorOf(ref);
    const cos = stored.reduce((s, v, j) => s + v * embedded[i * space.dim + j], 0);
    assert.ok(cos >= min, `${ref}: cosine ${cos}`);
  });
}

Cli('should train an adapter into the fine-tuned encoder, which embeds text as the stored vectors are', async () => {
  const home = mkdtempSync(join(tmpdir(), 'laborspace-adapter-'));
  try {
    await runCli('--home', home, 'build', '--data', FIXTURES, '--no-train');
    const config = writeConfig(home, { adapterLr: 0.05, evalEvery: 20, patience: 10 });
    const trained = JSON.parse(await runCli('--home', home, '--json', 'train', '--tune', 'head', '--steps', '40', '--adapter-rank', '4', '--config', config));
    assert.is(trained.config.adapterRank, 4);
    assert.is(trained.tune, 'head');
    await assertRejects(runCli('--home', home, 'train', '--adapter-rank', '4'), Error, /--adapter-rank is for --tune head/);
    await assertRejects(runCli('--home', home, 'train', '--tune', 'head', '--budget', '1m'), Error, /--budget and --epochs are for --tune full/);
    await assertRejects(runCli('--home', home, 'train', '--budget', 'soon'), Error, /must be a positive duration such as 600, 90s, 10m or 1\.5h/);
    const space = await LaborSpace.open(home);
    try {
      // The ONNX model's adapter nodes against the native head the vectors came from.
      await assertEmbedsAsStored(space, 0.9999);
    } finally {
      await space.close();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Cli('should turn --epochs into steps over the training pairs, and refuse what does not apply', async () => {
  const home = mkdtempSync(join(tmpdir(), 'laborspace-epochs-'));
  try {
    await build(home, { dataDir: FIXTURES, train: false });
    const config = writeConfig(home, { encoder: { batchSize: 16, headSteps: 0 } });
    const trained = JSON.parse(await runCli('--home', home, '--json', 'train', '--epochs', '0.05', '--config', config));
    const pairs = Object.values(trained.trainPairs as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.is(trained.stepsRun, Math.ceil((0.05 * pairs) / 16));
    assert.is(trained.headSteps, 0, 'headSteps 0 skips the head stage');
    // The masked-token stage before it: a new run (its config differs), the same relation steps.
    const store = openHomeStore(home);
    const notes: string[] = [];
    const before = store.vectors(TUNED_MODEL_ID).matrix.slice();
    const context = await trainStep(store, home, { epochs: 0.05, encoder: { batchSize: 16, headSteps: 0, contextSteps: 3, contextTexts: 8 } }, { onNote: (n) => notes.push(n) });
    assert.ok(context.runId !== trained.runId && context.stepsRun === trained.stepsRun && context.config.contextSteps === 3, JSON.stringify(context.config));
    assert.ok(notes.some((n) => /^masked-token loss \d+\.\d+ -> \d+\.\d+/.test(n)), notes.join('; '));
    const after = store.vectors(TUNED_MODEL_ID).matrix;
    assert.ok(after.length === before.length && after.some((v, i) => Math.abs(v - before[i]) > 1e-4), 'the stage changes the fine-tuned space');
    await assertRejects(runCli('--home', home, 'train', '--tune', 'head', '--context-steps', '2'), Error, /--context-steps is for --tune full/);
    await assertRejects(runCli('--home', home, 'train', '--epochs', '-1'), Error, /must be a positive number/);
    await assertRejects(trainStep(store, home, { tune: 'both' as 'full' }), RangeError, /tune must be full or head, got both/);
    store.close();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Cli('should resume an interrupted run from its checkpoint, and start over with --fresh', async () => {
  const home = mkdtempSync(join(tmpdir(), 'laborspace-resume-'));
  try {
    await build(home, { dataDir: FIXTURES, train: false });
    const store = openHomeStore(home);
    const options = { tune: 'head' as const, steps: 30, evalEvery: 10, patience: 10 };
    const interrupt = () => {
      throw new Error('interrupted');
    };
    await assertRejects(trainStep(store, home, options, { onCheckpoint: interrupt }), Error, /interrupted/);
    const files = readdirSync(join(home, 'checkpoints'));
    assert.is(files.length, 1, 'the checkpoint of step 10 is on disk');
    const notes: string[] = [];
    const resumed = await trainStep(store, home, options, { onNote: (m) => notes.push(m) });
    assert.is(resumed.resumedFrom, 10);
    assert.ok(notes.some((n) => /resuming the interrupted training run from step 10 of 30/.test(n)), notes.join('\n'));
    assert.not.ok(existsSync(join(home, 'checkpoints', files[0])), 'a finished run removes its checkpoint');
    await assertRejects(trainStep(store, home, { ...options, seed: 5 }, { onCheckpoint: interrupt }), Error, /interrupted/);
    const fresh = JSON.parse(await runCli('--home', home, '--json', 'train', '--tune', 'head', '--steps', '30', '--fresh', '--config', writeConfig(home, { evalEvery: 10, patience: 10, seed: 5 })));
    assert.is(fresh.resumedFrom, 0, '--fresh ignores the checkpoint');
    store.close();
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Cli.run();
