import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { embedTokenLists } from '../src/encoder/native-use-lite.js';
import { Encoder, type EncoderDims, normalize } from '../src/native.js';
import { distillLossRef } from '../src/train/reference.js';
import { DEFAULT_ENCODER_TUNE_CONFIG, type EncoderTrainState, layerLrFactors, trainEncoder } from '../src/train/encoder-trainer.js';
import type { PairSet } from '../src/train/examples.js';
import { initialMaskedHead, maskTokens, type MaskedTokenConfig, trainMaskedTokens } from '../src/train/masked-tokens.js';
import { excludedPositives, knownPositives, mineNegatives, poolNegatives, sampleBatch } from '../src/train/trainer.js';
import { randomIndex, randomMatrix, rng } from './helpers.js';

const DIMS: EncoderDims = {
  vocab: 40,
  embed: 8,
  maxTokens: 12,
  headOut: 6,
  layers: [
    { widthIn: 8, widthOut: 12, heads: 2, ffn: 10, residualProjection: true, queryScale: 0.5 },
    { widthIn: 12, widthOut: 12, heads: 3, ffn: 9, residualProjection: false, queryScale: 0.5 },
  ],
};

function setup() {
  const encoder = new Encoder(DIMS, randomMatrix(DIMS.maxTokens, DIMS.embed, 1), { device: 'cpu' });
  const initial = randomMatrix(1, encoder.paramCount, 2).map((v) => v * 0.3);
  for (const t of encoder.layout) if (t.name.endsWith('.scale')) encoder.tensor(initial, t.name).fill(1);
  // 60 "entities" of 2-11 tokens; pairs link entity i to i + 30 (MNRL) and weigh pairs (CoSENT).
  const next = rng(3);
  const tokens = Array.from({ length: 60 }, () => Int32Array.from({ length: 2 + randomIndex(next, 10) }, () => randomIndex(next, 40)));
  const rows = Int32Array.from({ length: 30 }, (_, i) => i);
  const set = (kind: string, loss: PairSet['loss']): PairSet => ({
    kind,
    loss,
    weight: 1,
    anchors: rows,
    positives: rows.map((i) => i + 30),
    targets: Float32Array.from(rows, (i) => (i % 5) / 5 + 0.1),
    negatives: rows.map((i) => (i + 31) % 60),
  });
  return { encoder, initial, tokens, train: [set('links', 'mnrl'), set('weights', 'cosent'), set('triples', 'triplet')] };
}

const config = { ...DEFAULT_ENCODER_TUNE_CONFIG, steps: 12, batchSize: 8, warmupSteps: 3, checkpointEvery: 4, lr: 3e-3 };

const Trainer = suite('trainEncoder');

Trainer('should lower the loss of the pairs it trains on, deterministically', () => {
  const { encoder, initial, tokens, train } = setup();
  const lossesAt: number[] = [];
  const a = trainEncoder(encoder, tokens, [train[0]], initial, { ...config, steps: 30 }, { onStep: (_, __, l) => lossesAt.push(l.links) });
  const early = lossesAt.slice(0, 5).reduce((s, v) => s + v, 0);
  const late = lossesAt.slice(-5).reduce((s, v) => s + v, 0);
  assert.ok(late < early * 0.8, `MNRL ${early / 5} -> ${late / 5}`);
  const b = trainEncoder(encoder, tokens, [train[0]], initial, { ...config, steps: 30 });
  assert.ok(a.params.every((v, i) => v === b.params[i]), 'the same seed gives the same weights, bit for bit');
  assert.ok(a.params.some((v, i) => v !== initial[i]), 'the weights moved');
  assert.is(a.steps, 30);
});

Trainer('should draw MNRL pool negatives that are neither batch texts nor known positives, and mask known positives in the batch', () => {
  // Anchors 0-9 each link to 20 + i and 30 + i; the pool is rows 20-59.
  const anchors = Int32Array.from({ length: 20 }, (_, i) => i % 10);
  const positives = Int32Array.from({ length: 20 }, (_, i) => (i < 10 ? 20 : 30) + (i % 10));
  const set: PairSet = { kind: 'k', loss: 'mnrl', weight: 1, anchors, positives, targets: new Float32Array(20), negatives: new Int32Array(20).fill(-1), pool: Int32Array.from({ length: 40 }, (_, i) => 20 + i) };
  const known = knownPositives(set);
  assert.equal([...known.get(3)!].sort(), [23, 33]);
  const next = rng(5);
  const pick = (n: number) => randomIndex(next, n);
  for (let t = 0; t < 20; t++) {
    const batch = sampleBatch(set, 6, pick)!;
    const extra = poolNegatives(set, batch, known, 8, pick);
    const forbidden = new Set([...batch.sides.flat(), ...batch.sides[0].flatMap((a) => [...known.get(a)!])]);
    assert.ok(extra.length > 0 && extra.length <= 8 && new Set(extra).size === extra.length, `${extra}`);
    assert.ok(extra.every((r) => r >= 20 && !forbidden.has(r)), `negatives ${extra} against ${[...forbidden]}`);
    const mask = excludedPositives(batch, known, extra.length);
    const [as, ps] = batch.sides;
    const C = ps.length + extra.length;
    assert.is(mask.length, as.length * C);
    as.forEach((a, i) =>
      ps.forEach((p, j) => assert.is(mask[i * C + j], j !== i && known.get(a)!.has(p) ? 1 : 0, `anchor ${a}, candidate ${p}`)),
    );
    assert.ok(mask.every((m, k) => m === 0 || k % C < ps.length), 'pool negatives are never masked');
  }
  assert.equal(poolNegatives({ ...set, pool: undefined }, sampleBatch(set, 4, pick)!, known, 8, pick), []);
  // Sibling negatives come first, once each, and never a batch text or a known positive.
  const siblings = { ...set, negatives: Int32Array.from({ length: 20 }, (_, i) => (i === 0 ? 30 : 40 + (i % 3))) };
  const batch = { rows: [0, 1, 2, 4], sides: [[0, 1, 2, 4], [20, 21, 22, 24]] };
  assert.equal(poolNegatives(siblings, batch, known, 0, pick), [41, 42]);
  assert.equal(poolNegatives({ ...siblings, pool: undefined }, batch, known, 5, pick), [41, 42]);
  assert.is(poolNegatives(siblings, batch, known, 5, pick).length, 7);
});

Trainer('should mine each anchor\'s nearest pool rows but its known positives, and draw one per anchor', () => {
  // Rows on a circle: row r at angle r degrees, so the nearest rows of r are r +- 1, r +- 2, ...
  const vectors = normalize(Float32Array.from({ length: 60 * 2 }, (_, k) => (k % 2 ? Math.sin : Math.cos)(((k >> 1) * Math.PI) / 180)), 2);
  const anchors = Int32Array.from([10, 10, 30]);
  const set: PairSet = { kind: 'k', loss: 'mnrl', weight: 1, anchors, positives: Int32Array.from([11, 9, 40]), targets: new Float32Array(3), negatives: new Int32Array(3).fill(-1), pool: Int32Array.from({ length: 60 }, (_, i) => i) };
  const known = knownPositives(set);
  const mined = mineNegatives(set, vectors, 2, known, 3);
  // Anchor 10 knows 9 and 11: 8 and 12 are nearest, then 7 or 13 (a tie); anchor 30 knows 40.
  const m10 = [...mined.get(10)!], m30 = [...mined.get(30)!];
  assert.ok(m10.length === 3 && m10.includes(8) && m10.includes(12) && (m10.includes(7) || m10.includes(13)), `anchor 10: ${m10}`);
  assert.ok(m30.length === 3 && m30.includes(29) && m30.includes(31) && (m30.includes(28) || m30.includes(32)), `anchor 30: ${m30}`);
  assert.is(mineNegatives({ ...set, pool: undefined }, vectors, 2, known, 3).size, 0);
  const next = rng(9);
  const pick = (n: number) => randomIndex(next, n);
  const batch = { rows: [0, 2], sides: [[10, 30], [11, 40]] };
  const extra = poolNegatives(set, batch, known, 0, pick, mined);
  assert.is(extra.length, 2);
  assert.ok(mined.get(10)!.includes(extra[0]) && mined.get(30)!.includes(extra[1]), `${extra}`);
});

Trainer('should train with mined negatives, deterministically, and differently from without', () => {
  const { encoder, initial, tokens, train } = setup();
  const teacher = embedTokenLists(encoder, initial, tokens);
  const withPool = [{ ...train[0], pool: Int32Array.from({ length: 30 }, (_, i) => 30 + i) }];
  const run = (minedNegatives: number) => trainEncoder(encoder, tokens, withPool, initial, { ...config, poolNegatives: 2, minedNegatives }, {}, undefined, teacher);
  const a = run(4), b = run(4), none = run(0);
  assert.ok(a.params.every((v, i) => v === b.params[i]), 'bit for bit for a seed');
  assert.ok(a.params.some((v, i) => v !== none.params[i]), 'the mined negatives change the gradients');
  assert.throws(() => trainEncoder(encoder, tokens, withPool, initial, { ...config, minedNegatives: 4 }), /mined negatives need the pretrained vector/);
});

Trainer('should train with pool negatives, deterministically, and differently from in-batch negatives alone', () => {
  const { encoder, initial, tokens, train } = setup();
  const withPool = [{ ...train[0], pool: Int32Array.from({ length: 30 }, (_, i) => 30 + i) }];
  const a = trainEncoder(encoder, tokens, withPool, initial, { ...config, poolNegatives: 6 });
  const b = trainEncoder(encoder, tokens, withPool, initial, { ...config, poolNegatives: 6 });
  const none = trainEncoder(encoder, tokens, withPool, initial, { ...config, poolNegatives: 0 });
  assert.ok(a.params.every((v, i) => v === b.params[i]), 'bit for bit for a seed');
  assert.ok(a.params.some((v, i) => v !== none.params[i]), 'the pool negatives change the gradients');
});

Trainer('should end with the same weights, bit for bit, when resumed from a checkpoint', () => {
  const { encoder, initial, tokens, train } = setup();
  const states: EncoderTrainState[] = [];
  const copy = (s: EncoderTrainState): EncoderTrainState => ({ ...s, params: s.params.slice(), m: s.m.slice(), v: s.v.slice(), losses: { ...s.losses } });
  const whole = trainEncoder(encoder, tokens, train, initial, config, { onCheckpoint: (s) => states.push(copy(s)) });
  assert.equal(states.map((s) => s.step), [4, 8], 'checkpoints every 4 steps, none at the end');
  const resumed = trainEncoder(encoder, tokens, train, initial, config, {}, states[0]);
  assert.ok(resumed.params.every((v, i) => v === whole.params[i]), 'resumed run ends where the whole run did');
});

Trainer('should fix the step count from a time budget after timing the first steps', () => {
  const { encoder, initial, tokens, train } = setup();
  const seen: number[] = [];
  const result = trainEncoder(encoder, tokens, train, initial, { ...config, steps: 0, budgetSeconds: 0.5 }, { onStep: (_, steps) => seen.push(steps) });
  assert.equal(seen.slice(0, 4), [0, 0, 0, 0], 'unknown while timing');
  assert.ok(result.steps >= 5 && seen[seen.length - 1] === result.steps, `${result.steps} steps`);
  assert.ok(result.secondsPerStep > 0 && result.steps * result.secondsPerStep < 1.5, `${result.steps} x ${result.secondsPerStep} s`);
});

Trainer('should pull the weights toward the pretrained ones with l2Pretrained', () => {
  const { encoder, initial, tokens, train } = setup();
  const distance = (p: Float32Array) => Math.sqrt(p.reduce((s, v, i) => s + (v - initial[i]) ** 2, 0));
  const free = trainEncoder(encoder, tokens, train, initial, { ...config, steps: 20, weightDecay: 0, l2Pretrained: 0 });
  const held = trainEncoder(encoder, tokens, train, initial, { ...config, steps: 20, weightDecay: 0, l2Pretrained: 50 });
  assert.ok(distance(held.params) < distance(free.params), `${distance(held.params)} vs ${distance(free.params)}`);
});

Trainer('should keep the pretrained space\'s similarities closer with distillation', () => {
  const { encoder, initial, tokens, train } = setup();
  const teacher = embedTokenLists(encoder, initial, tokens);
  const drift = (p: Float32Array) => distillLossRef(embedTokenLists(encoder, p, tokens), teacher, DIMS.headOut, 1);
  const free = trainEncoder(encoder, tokens, train, initial, { ...config, steps: 20 });
  const held = trainEncoder(encoder, tokens, train, initial, { ...config, steps: 20, distill: 20 }, {}, undefined, teacher);
  assert.ok(drift(held.params) < 0.8 * drift(free.params), `${drift(held.params)} vs ${drift(free.params)}`);
  assert.throws(() => trainEncoder(encoder, tokens, train, initial, { ...config, distill: 1 }), /distillation and mined negatives need the pretrained vector of each of the 60 texts/);
  assert.throws(() => trainEncoder(encoder, tokens, train, initial, { ...config, distill: 1 }, {}, undefined, teacher.subarray(6)), /distillation and mined negatives need/);
});

Trainer('should scale learning rates down layer by layer below the head', () => {
  const { encoder } = setup();
  const factors = layerLrFactors(encoder, 0.5);
  const of = (name: string) => factors[encoder.layout.findIndex((t) => t.name === name)];
  assert.equal([of('head.weight'), of('layer1.qkv.weight'), of('layer0.ffn2.bias'), of('embeddings')], [1, 0.5, 0.25, 0.125]);
});

Trainer('should refuse runs with nothing to train on or no length', () => {
  const { encoder, initial, tokens, train } = setup();
  assert.throws(() => trainEncoder(encoder, tokens, [], initial, config), /no training pairs/);
  assert.throws(() => trainEncoder(encoder, tokens, train, initial, { ...config, steps: 0, budgetSeconds: 0 }), /give the run steps or a time budget/);
  assert.throws(() => trainEncoder(encoder, tokens, train, initial.subarray(1), config), /initial has \d+ values, the encoder \d+/);
});

Trainer.run();

const Masked = suite('masked-token stage');

const maskConfig: MaskedTokenConfig = { steps: 80, texts: 32, maskShare: 0.15, lr: 1e-2, layerDecay: 0.8, warmupSteps: 4, weightDecay: 0.01, clipNorm: 1, seed: 7, recompute: false, maskToken: 3, firstPiece: 6 };

Masked('should mask a share of every text (at least one token), 80% with the mask token, and keep the originals as targets', () => {
  const next = rng(11);
  const lists = Array.from({ length: 400 }, (_, i) => Int32Array.from({ length: 1 + (i % 30) }, () => 6 + randomIndex(next, 34)));
  const { batch, positions, targets } = maskTokens(lists, 0.15, 40, 12, maskConfig, rng(12));
  let masked = 0, random = 0, kept = 0, at = 0;
  lists.forEach((list, s) => {
    const start = batch.offsets[s], length = batch.offsets[s + 1] - start;
    assert.is(length, Math.min(list.length, 12), 'cut to the model limit');
    const mine: number[] = [];
    while (at < positions.length && positions[at] < start + length) mine.push(positions[at++]);
    assert.is(mine.length, Math.max(1, Math.round(0.15 * length)), `text ${s}`);
    for (const p of mine) {
      assert.ok(p >= start, 'positions ascend, inside their text');
      const k = positions.indexOf(p);
      assert.is(targets[k], list[p - start], 'the target is the original token');
      if (batch.tokens[p] === 3) masked++;
      else if (batch.tokens[p] === targets[k]) kept++;
      else random++;
      assert.ok(batch.tokens[p] === 3 || batch.tokens[p] >= 6, 'replacements are ordinary pieces');
    }
    for (let r = start; r < start + length; r++) if (!mine.includes(r)) assert.is(batch.tokens[r], list[r - start], 'unmasked tokens stay');
  });
  const total = masked + random + kept;
  assert.ok(Math.abs(masked / total - 0.8) < 0.06 && random / total > 0.04 && kept / total > 0.04, `${masked} masked, ${random} random, ${kept} kept`);
  assert.throws(() => maskTokens(lists, 0, 40, 12, maskConfig, rng(1)), /masked share must be between 0 and 1, got 0/);
  assert.throws(() => maskTokens(lists, 0.2, 6, 12, maskConfig, rng(1)), /first piece 6 is outside the vocabulary of 6/);
});

Masked('should lower the masked-token loss, deterministically, leaving the sentence head as it was', () => {
  const { encoder, initial } = setup();
  // Runs of consecutive pieces: a masked token follows from its neighbours, not from the
  // unigram distribution the output layer starts from (34 pieces, equally often: log 34 = 3.5).
  const next = rng(13);
  const tokens = Array.from({ length: 60 }, () => {
    const first = randomIndex(next, 34);
    return Int32Array.from({ length: 4 + randomIndex(next, 8) }, (_, j) => 6 + ((first + j) % 34));
  });
  // The output layer starts from the unigram distribution (smoothed): a zero projection.
  const start = initialMaskedHead(encoder, tokens);
  const width = DIMS.layers[1].widthOut * DIMS.embed + DIMS.embed;
  assert.ok(start.subarray(0, width).every((v) => v === 0));
  const bias = start.subarray(width);
  assert.ok(Math.abs(bias.reduce((acc, b) => acc + Math.exp(b), 0) - 1) < 1e-5 && bias[6] > bias[0] + 2, 'log shares of the tokens');
  const losses: number[] = [];
  const a = trainMaskedTokens(encoder, tokens, initial, maskConfig, (_, __, loss) => losses.push(loss));
  assert.is(losses.length, 80);
  assert.ok(a.firstLoss > 3.3 && a.lastLoss < a.firstLoss * 0.85, `loss ${a.firstLoss} -> ${a.lastLoss}`);
  const b = trainMaskedTokens(encoder, tokens, initial, maskConfig);
  assert.ok(a.params.every((v, i) => v === b.params[i]), 'the same seed gives the same weights, bit for bit');
  for (const t of encoder.layout) {
    const moved = encoder.tensor(a.params, t.name).some((v, i) => v !== encoder.tensor(initial, t.name)[i]);
    assert.is(moved, !t.name.startsWith('head.'), `${t.name} ${moved ? 'moved' : 'stayed'}`);
  }
  // Relation training goes on from the stage's weights, still pulled toward the pretrained ones.
  const { train } = setup();
  const from = trainEncoder(encoder, tokens, [train[0]], initial, { ...config, steps: 3 }, {}, undefined, undefined, a.params);
  const plain = trainEncoder(encoder, tokens, [train[0]], initial, { ...config, steps: 3 });
  assert.ok(from.params.some((v, i) => v !== plain.params[i]), 'a different start gives different weights');
  assert.throws(() => trainMaskedTokens(encoder, tokens, initial, { ...maskConfig, steps: 0 }), /masked-token steps must be a positive integer, got 0/);
  assert.throws(() => trainMaskedTokens(encoder, tokens, initial, { ...maskConfig, texts: 1.5 }), /texts per step must be a positive integer, got 1.5/);
  assert.throws(() => trainMaskedTokens(encoder, [], initial, maskConfig), /no texts to learn from/);
  assert.throws(() => trainMaskedTokens(encoder, tokens, initial.subarray(1), maskConfig), /start has \d+ values, the encoder \d+/);
  assert.throws(() => trainEncoder(encoder, tokens, [train[0]], initial, config, {}, undefined, undefined, initial.subarray(1)), /start has \d+ values/);
});

Masked.run();
