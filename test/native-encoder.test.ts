import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { ensureUseLiteModel } from '../src/encoder/model-cache.js';
import { embedTokenLists, loadNativeUseLite, packTokens } from '../src/encoder/native-use-lite.js';
import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { distillLoss, Encoder, type EncoderDims, mnrlLoss, nativeInfo, normalize, setThreads } from '../src/native.js';
import { encoderForwardRef, maskedTokenLossRef, mnrlLossRef } from '../src/train/reference.js';
import { assertClose, assertThrowsCode, centralDifference, forEachIsa, randomIndex, randomMatrix, rng } from './helpers.js';
import { BATCH, CPU, cosine, TIMING, TINY, tinyParams } from './tiny-encoder.js';

/** The arena-sized gradient with the sparse embedding rows scattered into it. */
function denseGradient(encoder: Encoder, grad: Float32Array, ids: Int32Array, rows: Float32Array): Float64Array {
  const dense = Float64Array.from(grad);
  const { offset, cols } = encoder.layout[0];
  dense.fill(0, offset, offset + encoder.layout[0].rows * cols);
  ids.forEach((id, u) => {
    for (let j = 0; j < cols; j++) dense[offset + id * cols + j] = rows[u * cols + j];
  });
  return dense;
}

const Forward = suite('Encoder.forward');

Forward('should equal the float64 reference at tiny odd sizes on every ISA, with and without recomputation', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 5);
  const expected = encoderForwardRef(TINY, encoder.layout, params, TIMING, BATCH.tokens, BATCH.offsets);
  forEachIsa((isa) => {
    assertClose(encoder.forward(params, BATCH), expected, 2e-6, `${isa} embeddings`);
    assertClose(encoder.forward(params, BATCH, { recompute: true }), expected, 2e-6, `${isa} embeddings (recompute)`);
  });
});

Forward('should give a text the same vector alone as in any batch, and the same result twice', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 6);
  const together = encoder.forward(params, BATCH);
  assert.equal(encoder.forward(params, BATCH), together, 'deterministic');
  for (let s = 0; s < 4; s++) {
    const alone = encoder.forward(params, { tokens: BATCH.tokens.slice(BATCH.offsets[s], BATCH.offsets[s + 1]), offsets: Int32Array.from([0, BATCH.offsets[s + 1] - BATCH.offsets[s]]) });
    assertClose(alone, together.subarray(s * 5, (s + 1) * 5), 1e-6, `text ${s} alone`);
  }
});

Forward('should refuse bad batches, parameters and sizes with errors that name them', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 7);
  const one = (tokens: number[], offsets: number[]) => ({ tokens: Int32Array.from(tokens), offsets: Int32Array.from(offsets) });
  assertThrowsCode(() => encoder.forward(params, one(Array(10).fill(1), [0, 10])), RangeError, 'ERR_LABORSPACE_ARGUMENT', /text 0 has 10 tokens, more than the model's 9/);
  assertThrowsCode(() => encoder.forward(params, one([1, 2], [0, 0, 2])), RangeError, 'ERR_LABORSPACE_ARGUMENT', /text 0 has no tokens/);
  assertThrowsCode(() => encoder.forward(params, one([1, 11], [0, 2])), RangeError, 'ERR_LABORSPACE_ARGUMENT', /token 1 is 11, outside the vocabulary of 11/);
  assertThrowsCode(() => encoder.forward(params, one([1, -1], [0, 2])), RangeError, 'ERR_LABORSPACE_ARGUMENT', /token 1 is -1/);
  assertThrowsCode(() => encoder.forward(params, one([1, 2], [0, 3])), RangeError, 'ERR_LABORSPACE_DIMENSION', /offsets must run from 0 to the number of tokens \(2\)/);
  assertThrowsCode(() => encoder.forward(params, one([1, 2], [0, 2, 1])), RangeError, 'ERR_LABORSPACE_ARGUMENT', /offsets must not decrease \(text 1\)/);
  assertThrowsCode(() => encoder.forward(params, one([1], [0])), RangeError, 'ERR_LABORSPACE_DIMENSION', /at least two entries/);
  assertThrowsCode(() => encoder.forward(params.subarray(1), BATCH), RangeError, 'ERR_LABORSPACE_DIMENSION', /params has 1338 values, the encoder 1339/);
  const bad = params.slice();
  bad[40] = NaN;
  assertThrowsCode(() => encoder.forward(bad, BATCH), RangeError, 'ERR_LABORSPACE_NON_FINITE', /params value 40 \(embeddings\[40\]\) is not finite/);
  const huge = params.slice();
  encoder.tensor(huge, 'layer1.ffn2.weight').fill(3e38);
  assertThrowsCode(() => encoder.forward(huge, BATCH), RangeError, 'ERR_LABORSPACE_NON_FINITE', /pooled state of text 0 is not finite/);
  assertThrowsCode(() => encoder.forward(params, { tokens: new Int32Array(2), offsets: new Float32Array(2) as unknown as Int32Array }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /offsets must be a Int32Array/);
  const withLayers = (layers: EncoderDims['layers']) => () => new Encoder({ ...TINY, layers }, TIMING);
  assertThrowsCode(withLayers([{ ...TINY.layers[0], heads: 4 }, TINY.layers[1]]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /layer 0: width 6 does not split into 4 heads/);
  assertThrowsCode(withLayers([{ ...TINY.layers[0], residualProjection: false }, TINY.layers[1]]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /layer 0 changes width, so it needs a residual projection/);
  assertThrowsCode(withLayers([TINY.layers[1]]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /layer 0 reads width 10 but its input has 6/);
  assertThrowsCode(withLayers([]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /at least one layer/);
  assertThrowsCode(() => new Encoder({ ...TINY, embed: 0 }, TIMING), RangeError, 'ERR_LABORSPACE_RANGE', /dims\.embed must be an integer from 1/);
  assertThrowsCode(() => new Encoder(TINY, TIMING.subarray(6)), RangeError, 'ERR_LABORSPACE_DIMENSION', /timing has 8 rows, expected 9/);
  assert.throws(() => encoder.tensor(params, 'layer9.qkv.weight'), /the encoder has no tensor layer9\.qkv\.weight/);
});

Forward.run();

const OnDevice = suite('Encoder.device');

OnDevice('should run on the CPU when asked, take the GPU on auto only where there is one, and refuse unknown or missing devices', () => {
  assert.is(new Encoder(TINY, TIMING, CPU).device, 'cpu');
  const cuda = nativeInfo().cuda;
  assert.is(new Encoder(TINY, TIMING).device, cuda.devices > 0 ? 'cuda' : 'cpu');
  assertThrowsCode(() => new Encoder(TINY, TIMING, { device: 'tpu' as 'cpu' }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /device must be 'auto', 'cpu' or 'cuda'/);
  if (cuda.devices === 0)
    assertThrowsCode(() => new Encoder(TINY, TIMING, { device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', cuda.compiled ? /no CUDA device is available/ : /this build has no CUDA support/);
});

OnDevice.run();

const Backward = suite('Encoder.backward');

Backward('should match central differences of the float64 reference for every tensor, on every ISA', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 8);
  const weights = randomMatrix(4, TINY.headOut, 9); // L = sum of weights * embeddings
  const loss = (p: Float64Array) => encoderForwardRef(TINY, encoder.layout, p, TIMING, BATCH.tokens, BATCH.offsets).reduce((s, e, i) => s + e * weights[i], 0);
  forEachIsa((isa) => {
    for (const recompute of [false, true]) {
      encoder.forward(params, BATCH, { recompute });
      const grad = new Float32Array(encoder.paramCount);
      const out = encoder.backward(params, weights, grad);
      assert.equal(Array.from(out.embeddingIds), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'every token of the batch, ascending, once');
      const analytic = denseGradient(encoder, grad, out.embeddingIds, out.embeddingRows);
      const x = Float64Array.from(params);
      const next = rng(10);
      for (const t of encoder.layout)
        for (let c = 0; c < 3; c++) {
          const i = t.offset + randomIndex(next, t.rows * t.cols);
          const numeric = centralDifference(x, i, 1e-5, () => loss(x));
          assert.ok(Math.abs(numeric - analytic[i]) <= 1e-4 + 1e-3 * Math.abs(numeric), `${isa}${recompute ? ' recompute' : ''} ${t.name}[${i - t.offset}]: analytic ${analytic[i]}, numeric ${numeric}`);
        }
    }
  });
});

Backward('should give the adapter gradients of central differences, and lossStep the gradients of forward, loss and backward', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 11);
  const rank = 2;
  const adapter = { rank, down: randomMatrix(rank, TINY.headOut, 12), up: randomMatrix(TINY.headOut, rank, 13) };
  const weights = randomMatrix(4, TINY.headOut, 14);
  encoder.forward(params, BATCH, { adapter });
  const out = encoder.backward(params, weights, new Float32Array(encoder.paramCount), adapter);
  for (const [name, tensor, grad] of [['down', adapter.down, out.gradAdapterDown!], ['up', adapter.up, out.gradAdapterUp!]] as const)
    for (let i = 0; i < tensor.length; i += 3) {
      const at = (v: number) => {
        const moved = { ...adapter, [name]: Float64Array.from(tensor, (t, j) => (j === i ? v : t)) };
        return encoderForwardRef(TINY, encoder.layout, params, TIMING, BATCH.tokens, BATCH.offsets, moved).reduce((s, e, k) => s + e * weights[k], 0);
      };
      const numeric = (at(tensor[i] + 1e-5) - at(tensor[i] - 1e-5)) / 2e-5;
      assert.ok(Math.abs(numeric - grad[i]) <= 1e-4 + 1e-3 * Math.abs(numeric), `adapter ${name}[${i}]: ${grad[i]} vs ${numeric}`);
    }
  // lossStep: MNRL over anchors (texts 0, 1) and positives (texts 2, 3), weighted 0.5.
  const stepGrad = new Float32Array(encoder.paramCount);
  const step = encoder.lossStep('mnrl', params, BATCH, stepGrad, { scale: 7, weight: 0.5 });
  const e = encoder.forward(params, BATCH);
  const d = TINY.headOut;
  assert.ok(Math.abs(step.loss - mnrlLossRef(e.subarray(0, 2 * d), e.subarray(2 * d), d, 7, false)) < 1e-5, `loss ${step.loss}`);
  const l = mnrlLoss(e.subarray(0, 2 * d), e.subarray(2 * d), d, { scale: 7 });
  const gradE = new Float32Array(4 * d);
  gradE.set(l.gradAnchors.map((g) => g * 0.5));
  gradE.set(l.gradPositives.map((g) => g * 0.5), 2 * d);
  const manual = new Float32Array(encoder.paramCount);
  const manualOut = encoder.backward(params, gradE, manual);
  const start = encoder.layout[1].offset;
  assertClose(stepGrad.subarray(start), manual.subarray(start), 1e-6, 'lossStep dense gradients');
  assertClose(step.embeddingRows, manualOut.embeddingRows, 1e-6, 'lossStep embedding rows');
  // MNRL with an extra negative (text 4) and one known positive excluded (anchor 0, candidate 1).
  const five = packTokens([[1, 2, 3, 4], [0], [10, 5, 5], [5, 9, 8, 7, 6], [4, 3, 2]]);
  const excluded = Uint8Array.from([0, 1, 0, 0, 0, 0]);
  const extraGrad = new Float32Array(encoder.paramCount);
  const extra = encoder.lossStep('mnrl', params, five, extraGrad, { scale: 7, weight: 0.5, anchors: 2, excluded });
  const e5 = encoder.forward(params, five);
  assert.ok(Math.abs(extra.loss - mnrlLossRef(e5.subarray(0, 2 * d), e5.subarray(2 * d), d, 7, false, excluded)) < 1e-5, `loss ${extra.loss}`);
  const l5 = mnrlLoss(e5.subarray(0, 2 * d), e5.subarray(2 * d), d, { scale: 7, excluded });
  const manual5 = new Float32Array(encoder.paramCount);
  encoder.backward(params, Float32Array.from([...l5.gradAnchors, ...l5.gradPositives], (g) => g * 0.5), manual5);
  assertClose(extraGrad.subarray(start), manual5.subarray(start), 1e-6, 'lossStep with extra negatives');
  // With a teacher: the distillation term over all five texts joins the loss and its gradient.
  const teacher = normalize(randomMatrix(5, d, 16), d);
  const distilledGrad = new Float32Array(encoder.paramCount);
  const distilled = encoder.lossStep('mnrl', params, five, distilledGrad, { scale: 7, weight: 0.5, anchors: 2, excluded, teacher, distill: 3 });
  const dl = distillLoss(e5, teacher, d, { weight: 3 });
  assert.ok(dl.loss > 1e-3 && Math.abs(distilled.loss - extra.loss - dl.loss) < 1e-5, `loss ${distilled.loss} vs ${extra.loss} + ${dl.loss}`);
  const withDistill = Float32Array.from([...l5.gradAnchors, ...l5.gradPositives], (g, i) => (g + dl.grad[i]) * 0.5);
  const manualDistilled = new Float32Array(encoder.paramCount);
  encoder.forward(params, five);
  encoder.backward(params, withDistill, manualDistilled);
  assertClose(distilledGrad.subarray(start), manualDistilled.subarray(start), 1e-6, 'lossStep with a teacher');
});

Backward('should refuse a backward pass without a forward one and non-finite gradients', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 15);
  const grad = new Float32Array(encoder.paramCount);
  assertThrowsCode(() => encoder.backward(params, new Float32Array(5), grad), Error, 'ERR_LABORSPACE_STATE', /backward needs a forward pass first/);
  encoder.forward(params, BATCH);
  const bad = new Float32Array(20);
  bad[7] = Infinity;
  assertThrowsCode(() => encoder.backward(params, bad, grad), RangeError, 'ERR_LABORSPACE_NON_FINITE', /gradEmbeddings row 1, column 2 is not finite/);
  assertThrowsCode(() => encoder.backward(params, new Float32Array(20), grad.subarray(1)), RangeError, 'ERR_LABORSPACE_DIMENSION', /gradOut/);
  assertThrowsCode(() => encoder.lossStep('mnrl', params, { tokens: BATCH.tokens.subarray(0, 5), offsets: BATCH.offsets.subarray(0, 3) }, grad), RangeError, 'ERR_LABORSPACE_DIMENSION', /2 texts: the loss needs 2 equal sides of at least two texts/);
  assertThrowsCode(() => encoder.lossStep('cosent', params, BATCH, grad), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /this loss needs targets/);
  assertThrowsCode(() => encoder.lossStep('nope' as 'mnrl', params, BATCH, grad), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /loss must be/);
  assertThrowsCode(() => encoder.lossStep('cosent', params, BATCH, grad, { targets: new Float32Array(2), anchors: 2 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /only the MNRL loss takes extra negatives/);
  assertThrowsCode(() => encoder.lossStep('mnrl', params, BATCH, grad, { anchors: 3 }), RangeError, 'ERR_LABORSPACE_RANGE', /anchors must be an integer from 2 to 2, got 3/);
  assertThrowsCode(() => encoder.lossStep('mnrl', params, BATCH, grad, { anchors: 2, excluded: new Uint8Array(3) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /excluded has 3 values, expected 2 x 2/);
  const three = { tokens: BATCH.tokens.subarray(0, 8), offsets: BATCH.offsets.subarray(0, 4) };
  assertThrowsCode(() => encoder.lossStep('mnrl', params, three, grad, { anchors: 2 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /3 texts: fewer than two per anchor/);
  assertThrowsCode(() => encoder.lossStep('mnrl', params, BATCH, grad, { teacher: new Float32Array(3 * TINY.headOut) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /teacher has 3 rows, expected 4/);
  assertThrowsCode(() => encoder.lossStep('mnrl', params, BATCH, grad, { teacher: new Float32Array(4 * TINY.headOut), distill: -0.5 }), RangeError, 'ERR_LABORSPACE_RANGE', /distill must not be negative/);
});

Backward.run();

const Masked = suite('Encoder.maskedTokenStep');

Masked('should give the loss of the float64 reference and its central differences for every tensor, the tied table and the output layer, on every ISA', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 21);
  const head = randomMatrix(1, encoder.maskedHeadSize, 22).map((v) => v * 0.7);
  // Masked: in text 0 its second token (now 0), text 1's only one, two of text 3 (one a repeated 5).
  const masked = { tokens: Int32Array.from(BATCH.tokens), offsets: BATCH.offsets };
  const positions = Int32Array.from([1, 4, 8, 13]);
  const targets = Int32Array.from(Array.from(positions, (p) => BATCH.tokens[p]));
  masked.tokens[1] = 0;
  masked.tokens[4] = 3;
  const lossAt = (p: ArrayLike<number>, h: ArrayLike<number>) => maskedTokenLossRef(TINY, encoder.layout, p, h, TIMING, masked.tokens, masked.offsets, positions, targets);
  const expected = lossAt(params, head);
  forEachIsa((isa) => {
    for (const recompute of [false, true]) {
      const grad = new Float32Array(encoder.paramCount);
      const gradHead = new Float32Array(encoder.maskedHeadSize);
      const loss = encoder.maskedTokenStep(params, masked, positions, targets, head, grad, gradHead, { recompute });
      assert.ok(Math.abs(loss - expected) < 1e-5, `${isa}: loss ${loss}, reference ${expected}`);
      for (const t of encoder.layout) if (t.name.startsWith('head.')) assert.ok(encoder.tensor(grad, t.name).every((g) => g === 0), `${t.name} gets no gradient`);
      const x = Float64Array.from(params);
      const next = rng(23);
      const check = (what: string, values: Float64Array, i: number, analytic: number, at: () => number) => {
        const numeric = centralDifference(values, i, 1e-5, at);
        assert.ok(Math.abs(numeric - analytic) <= 1e-4 + 1e-3 * Math.abs(numeric), `${isa}${recompute ? ' recompute' : ''} ${what}: analytic ${analytic}, numeric ${numeric}`);
      };
      for (const t of encoder.layout) {
        if (t.name.startsWith('head.')) continue;
        for (let c = 0; c < 3; c++) {
          const i = t.offset + randomIndex(next, t.rows * t.cols);
          check(`${t.name}[${i - t.offset}]`, x, i, grad[i], () => lossAt(x, head));
        }
      }
      // Every row of the tied table: rows of tokens not in the batch (e.g. 3's, now masked away
      // as input but an output row still) get the output side's gradient alone.
      for (let row = 0; row < TINY.vocab; row++) check(`embeddings row ${row}`, x, row * TINY.embed + 1, grad[row * TINY.embed + 1], () => lossAt(x, head));
      const h = Float64Array.from(head);
      for (let i = 0; i < h.length; i += 5) check(`output layer [${i}]`, h, i, gradHead[i], () => lossAt(params, h));
    }
  });
});

Masked('should refuse bad positions, targets and output layers', () => {
  const encoder = new Encoder(TINY, TIMING, CPU);
  const params = tinyParams(encoder, 24);
  const head = new Float32Array(encoder.maskedHeadSize);
  const grad = new Float32Array(encoder.paramCount), gradHead = new Float32Array(encoder.maskedHeadSize);
  const step = (positions: number[], targets: number[], h = head, g = gradHead) => () => encoder.maskedTokenStep(params, BATCH, Int32Array.from(positions), Int32Array.from(targets), h, grad, g);
  assertThrowsCode(step([], []), RangeError, 'ERR_LABORSPACE_ARGUMENT', /no masked positions/);
  assertThrowsCode(step([1, 2], [3]), RangeError, 'ERR_LABORSPACE_DIMENSION', /positions has 2 entries, targets 1/);
  assertThrowsCode(step([17], [3]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /masked position 0 is 17, outside the batch's 17 tokens/);
  assertThrowsCode(step([-1], [3]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /masked position 0 is -1/);
  assertThrowsCode(step([2, 2], [3, 3]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /position 2 is masked twice/);
  assertThrowsCode(step([2], [11]), RangeError, 'ERR_LABORSPACE_ARGUMENT', /target 0 is 11, outside the vocabulary of 11/);
  assertThrowsCode(step([2], [3], head.subarray(1)), RangeError, 'ERR_LABORSPACE_DIMENSION', /head has 76 values, the output layer 77/);
  const bad = head.slice();
  bad[5] = NaN;
  assertThrowsCode(step([2], [3], bad), RangeError, 'ERR_LABORSPACE_NON_FINITE', /head value 5 is not finite/);
  assertThrowsCode(step([2], [3], head, gradHead.subarray(2)), RangeError, 'ERR_LABORSPACE_DIMENSION', /gradHead has 75 values, the output layer 77/);
  // Weights that overflow the logits make a non-finite loss, reported as such.
  const huge = head.map(() => 3e38);
  assertThrowsCode(step([2], [3], huge), RangeError, 'ERR_LABORSPACE_NON_FINITE', /not finite/);
});

Masked.run();

const UseLite = suite('Universal Sentence Encoder lite in the native core');
const home = mkdtempSync(join(tmpdir(), 'laborspace-native-encoder-'));
let ort: SentenceEncoder;
UseLite.before(async () => {
  ort = await SentenceEncoder.load(ensureUseLiteModel(home).dir, { threads: 2 });
});
UseLite.after(async () => {
  await ort.close();
  rmSync(home, { recursive: true, force: true });
});

UseLite('should equal onnxruntime on the converted model (cosine >= 0.99999) over lengths 1..128 in mixed batches', async () => {
  const words = ('Registered nurses assess patient health problems and needs, develop and implement nursing care plans, and maintain medical records. ' +
    'Administer nursing care to ill, injured, convalescent, or disabled patients. May advise patients on health maintenance and disease prevention or provide case management. ' +
    'Licensing or registration required. Includes Clinical Nurse Specialists. Monitor, record, and report symptoms or changes in patients conditions. ' +
    'Consult and coordinate with healthcare team members to assess, plan, implement, or evaluate patient care plans. Modify patient treatment plans as indicated by patients responses and conditions.').split(' ');
  const texts = ['nurse', 'a', ...Array.from({ length: words.length }, (_, i) => words.slice(0, i + 1).join(' '))];
  const ids = texts.map((t) => ort.tokenize(t));
  const lengths = ids.map((l) => Math.min(l.length, 128));
  assert.ok(Math.min(...lengths) === 1 && Math.max(...ids.map((l) => l.length)) > 128, `lengths ${Math.min(...lengths)}..${Math.max(...lengths)}`);
  const { vectors } = await ort.encode(texts);
  const { encoder, params } = loadNativeUseLite();
  // Mixed lengths in each batch (a small token budget cuts the length-sorted texts into many batches).
  const native = embedTokenLists(encoder, params, ids, { batchTokens: 700 });
  for (let i = 0; i < texts.length; i++) assert.ok(cosine(native, i, vectors, i, 512) >= 0.99999, `text of ${lengths[i]} tokens: cosine ${cosine(native, i, vectors, i, 512)}`);
  const shuffled = [7, 60, 1, 33, 2].map((i) => ids[i]);
  const together = encoder.forward(params, packTokens(shuffled));
  shuffled.forEach((_, j) => assert.ok(cosine(together, j, vectors, [7, 60, 1, 33, 2][j], 512) >= 0.99999, `mixed batch text ${j}`));
});

UseLite('should match central differences at a few coordinates of the real weights', () => {
  const { encoder, params, timing } = loadNativeUseLite();
  const batch = packTokens([ort.tokenize('nurse'), ort.tokenize('software developer')]);
  const weights = randomMatrix(2, 512, 16);
  encoder.forward(params, batch);
  const grad = new Float32Array(encoder.paramCount);
  const out = encoder.backward(params, weights, grad);
  const analytic = denseGradient(encoder, grad, out.embeddingIds, out.embeddingRows);
  const x = Float64Array.from(params);
  const loss = () => encoderForwardRef(encoder.dims, encoder.layout, x, timing, batch.tokens, batch.offsets).reduce((s, e, i) => s + e * weights[i], 0);
  const checked: string[] = [];
  for (const name of ['embeddings', 'layer0.qkv.weight', 'layer0.residual.weight', 'layer1.ln1.scale', 'layer1.ffn1.weight', 'head.weight']) {
    const t = encoder.layout.find((s) => s.name === name)!;
    // The coordinate with the largest gradient of the first rows (a zero one says nothing).
    let i = t.offset;
    for (let j = t.offset; j < t.offset + Math.min(t.rows * t.cols, 40000); j++) if (Math.abs(analytic[j]) > Math.abs(analytic[i])) i = j;
    const numeric = centralDifference(x, i, 1e-4, loss);
    assert.ok(Math.abs(numeric - analytic[i]) <= 2e-3 * Math.abs(numeric) + 1e-5, `${name}[${i - t.offset}]: analytic ${analytic[i]}, numeric ${numeric}`);
    checked.push(name);
  }
  assert.is(checked.length, 6);
});

UseLite('should be deterministic for a thread count', () => {
  const { encoder, params } = loadNativeUseLite();
  const batch = packTokens(['nurse', 'welder', 'data mining', 'hospitals'].map((t) => ort.tokenize(t)));
  const threads = nativeInfo().threads;
  try {
    const grad = new Float32Array(encoder.paramCount);
    const first = encoder.lossStep('mnrl', params, batch, grad);
    const firstGrad = grad.slice();
    const second = encoder.lossStep('mnrl', params, batch, grad);
    assert.is(second.loss, first.loss);
    assert.ok(grad.every((g, i) => g === firstGrad[i]), 'the same gradients, bit for bit');
    setThreads(1);
    const single = encoder.lossStep('mnrl', params, batch, new Float32Array(encoder.paramCount));
    assert.ok(Math.abs(single.loss - first.loss) < 1e-5, 'one thread agrees to rounding');
  } finally {
    setThreads(threads);
  }
});

UseLite.run();
