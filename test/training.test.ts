import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { adamwStep, cosentLoss, cosineMseLoss, distillLoss, headBackward, headForward, headLossStep, mnrlLoss, nativeInfo, normalize, tripletLoss } from '../src/native.js';
import { cosentLossRef, cosineMseLossRef, distillLossRef, headForwardRef, mnrlLossRef, tripletLossRef } from '../src/train/reference.js';
import { lossSides } from '../src/train/trainer.js';
import { randomIndex, randomMatrix, seededRandom as rng } from '../src/util/random.js';
import { assertThrowsCode, centralDifference, forEachIsa } from './helpers.js';

const SHAPES = [
  [7, 13],
  [32, 64],
];

const unit = (rows: number, dim: number, seed: number) => normalize(randomMatrix(rows, dim, seed), dim);

/** Central differences of a float64 loss at a few coordinates of one input, against a native gradient. */
function checkGradient(what: string, input: Float32Array, grad: Float32Array, loss: (x: Float64Array) => number, seed: number): void {
  const x = Float64Array.from(input);
  const next = rng(seed);
  const h = 1e-5;
  for (let t = 0; t < 12; t++) {
    const i = randomIndex(next, x.length);
    const numeric = centralDifference(x, i, h, () => loss(x));
    assert.ok(Math.abs(numeric - grad[i]) <= 2e-4 + 2e-3 * Math.abs(numeric), `${what}[${i}]: analytic ${grad[i]}, numeric ${numeric}`);
  }
}

const Losses = suite('losses');

Losses('should compute MNRL and its gradients, plain and symmetric, on every ISA', () => {
  forEachIsa(() => {
    for (const [B, d] of SHAPES)
      for (const symmetric of [false, true]) {
        const a = unit(B, d, B + d), p = unit(B, d, B * d);
        const r = mnrlLoss(a, p, d, { scale: 20, symmetric });
        assert.ok(Math.abs(r.loss - mnrlLossRef(a, p, d, 20, symmetric)) < 1e-4 * (1 + r.loss), `loss ${B}x${d}`);
        checkGradient(`dA ${B}x${d} ${symmetric}`, a, r.gradAnchors, (x) => mnrlLossRef(x, p, d, 20, symmetric), 1);
        checkGradient(`dP ${B}x${d} ${symmetric}`, p, r.gradPositives, (x) => mnrlLossRef(a, x, d, 20, symmetric), 2);
      }
  });
});

Losses('should compute MNRL over extra negatives with known positives excluded, on every ISA', () => {
  forEachIsa(() => {
    for (const [B, d] of SHAPES) {
      const C = B + 5 + (B >> 1);
      const a = unit(B, d, B + 1), p = unit(C, d, C * 3);
      const next = rng(B);
      // A few candidates per row are known positives; the diagonal is set too and must be ignored.
      const excluded = Uint8Array.from({ length: B * C }, (_, k) => (k % (C + 1) === 0 || randomIndex(next, 5) === 0 ? 1 : 0));
      const r = mnrlLoss(a, p, d, { scale: 20, excluded });
      const ref = mnrlLossRef(a, p, d, 20, false, excluded);
      assert.ok(Math.abs(r.loss - ref) < 1e-4 * (1 + ref), `loss ${r.loss} vs ${ref}`);
      assert.ok(Math.abs(ref - mnrlLossRef(a, p, d, 20, false)) > 1e-3, 'the mask changes the loss');
      assert.is(r.gradPositives.length, C * d);
      checkGradient(`dA ${B}x${C}`, a, r.gradAnchors, (x) => mnrlLossRef(x, p, d, 20, false, excluded), 3);
      checkGradient(`dP ${B}x${C}`, p, r.gradPositives, (x) => mnrlLossRef(a, x, d, 20, false, excluded), 4);
      // Square and symmetric with a mask: the column softmax drops the same pairs.
      const sq = Uint8Array.from({ length: B * B }, (_, k) => excluded[Math.floor(k / B) * C + (k % B)]);
      const s = mnrlLoss(a, p.subarray(0, B * d), d, { scale: 20, symmetric: true, excluded: sq });
      assert.ok(Math.abs(s.loss - mnrlLossRef(a, p.subarray(0, B * d), d, 20, true, sq)) < 1e-4 * (1 + s.loss));
      checkGradient(`dP sym ${B}`, p.subarray(0, B * d), s.gradPositives, (x) => mnrlLossRef(a, x, d, 20, true, sq), 5);
    }
  });
  const a = unit(4, 3, 1), p = unit(6, 3, 2);
  assertThrowsCode(() => mnrlLoss(a, p, 3, { excluded: new Uint8Array(4 * 5) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /excluded has 20 values, expected 4 x 6/);
  assertThrowsCode(() => mnrlLoss(a, p, 3, { excluded: new Int8Array(24) as unknown as Uint8Array }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /excluded must be a Uint8Array/);
  assertThrowsCode(() => mnrlLoss(a, p, 3, { symmetric: true }), RangeError, 'ERR_LABORSPACE_DIMENSION', /the symmetric loss takes no extra negatives/);
});

Losses('should compute the distillation term and its gradient on every ISA, zero where the spaces agree', () => {
  forEachIsa(() => {
    for (const [R, d] of SHAPES) {
      const e = unit(R, d, R + 7), t = unit(R, d, R + 8);
      const r = distillLoss(e, t, d, { weight: 0.7 });
      const ref = distillLossRef(e, t, d, 0.7);
      assert.ok(ref > 1e-3 && Math.abs(r.loss - ref) < 1e-5 * (1 + ref), `loss ${r.loss} vs ${ref}`);
      checkGradient(`dE ${R}x${d}`, e, r.grad, (x) => distillLossRef(x, t, d, 0.7), 6);
      const same = distillLoss(e, e, d);
      assert.ok(same.loss < 1e-10 && same.grad.every((g) => Math.abs(g) < 1e-6), 'the same space costs nothing');
    }
  });
  const e = unit(4, 3, 1);
  assertThrowsCode(() => distillLoss(e, unit(3, 3, 2), 3), RangeError, 'ERR_LABORSPACE_DIMENSION', /teacher has 3 rows, expected 4/);
  assertThrowsCode(() => distillLoss(e, unit(4, 3, 2), 3, { weight: -1 }), RangeError, 'ERR_LABORSPACE_RANGE', /distill must not be negative/);
  assertThrowsCode(() => distillLoss(e, Float32Array.from(e, (v, i) => (i === 5 ? NaN : v)), 3), RangeError, 'ERR_LABORSPACE_NON_FINITE', /teacher/);
  assertThrowsCode(() => distillLoss(e, unit(4, 3, 2), 3, { out: { grad: new Float32Array(2) } }), RangeError, 'ERR_LABORSPACE_DIMENSION', /out.grad has 2 values, expected 12/);
});

Losses('should compute the triplet loss with cosine and Euclidean distances', () => {
  for (const [B, d] of SHAPES)
    for (const euclidean of [false, true]) {
      const a = unit(B, d, 3), p = unit(B, d, 4), n = unit(B, d, 5);
      const margin = euclidean ? 0.3 : 0.2;
      const r = tripletLoss(a, p, n, d, { margin, euclidean });
      assert.ok(Math.abs(r.loss - tripletLossRef(a, p, n, d, margin, euclidean)) < 1e-5, `loss ${B}x${d}`);
      assert.ok(r.loss > 0);
      checkGradient('dA', a, r.gradAnchors, (x) => tripletLossRef(x, p, n, d, margin, euclidean), 3);
      checkGradient('dP', p, r.gradPositives, (x) => tripletLossRef(a, x, n, d, margin, euclidean), 4);
      checkGradient('dN', n, r.gradNegatives, (x) => tripletLossRef(a, p, x, d, margin, euclidean), 5);
    }
});

Losses('should compute the cosine-similarity MSE and CoSENT losses on every ISA', () => {
  forEachIsa(() => {
    for (const [B, d] of SHAPES) {
      const a = unit(B, d, 6), b = unit(B, d, 7);
      const t = Float32Array.from(randomMatrix(B, 1, 8), (v) => Math.abs(v));
      const mse = cosineMseLoss(a, b, t, d);
      assert.ok(Math.abs(mse.loss - cosineMseLossRef(a, b, t, d)) < 1e-5);
      checkGradient('mse dA', a, mse.gradLeft, (x) => cosineMseLossRef(x, b, t, d), 6);
      checkGradient('mse dB', b, mse.gradRight, (x) => cosineMseLossRef(a, x, t, d), 7);
      const cosent = cosentLoss(a, b, t, d, { scale: 20 });
      assert.ok(Math.abs(cosent.loss - cosentLossRef(a, b, t, d, 20)) < 1e-4 * (1 + cosent.loss));
      checkGradient('cosent dA', a, cosent.gradLeft, (x) => cosentLossRef(x, b, t, d, 20), 8);
      checkGradient('cosent dB', b, cosent.gradRight, (x) => cosentLossRef(a, x, t, d, 20), 9);
    }
  });
});

Losses('should reject mismatched batches and non-finite values', () => {
  const a = unit(4, 3, 1);
  assertThrowsCode(() => mnrlLoss(a, unit(3, 3, 2), 3), RangeError, 'ERR_LABORSPACE_DIMENSION', /positives has 3 rows, expected at least the 4 anchors/);
  assertThrowsCode(() => tripletLoss(a, a, unit(4, 3, 2).fill(NaN, 0, 1), 3), RangeError, 'ERR_LABORSPACE_NON_FINITE', /negatives row 0, column 0 is not finite/);
  assertThrowsCode(() => cosineMseLoss(a, a, new Float32Array(3), 3), RangeError, 'ERR_LABORSPACE_DIMENSION', /targets has 3 rows, expected 4/);
  assertThrowsCode(() => tripletLoss(a, a, a, 3, { margin: Infinity }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /margin must be finite/);
  // The check runs over chunks of 256 values: bad values at either edge of a chunk, and the largest
  // finite floats (whose exponent is one short of a non-finite one) accepted.
  const d = 300;
  const big = unit(3, d, 3).fill(3.4028234663852886e38, 0, 5).fill(-3.4028234663852886e38, 5, 10);
  assert.not.throws(() => cosineMseLoss(big, unit(3, d, 4), new Float32Array(3), d));
  for (const at of [0, 255, 256, 511, 899])
    for (const bad of [NaN, Infinity, -Infinity]) {
      const x = unit(3, d, 5);
      x[at] = bad;
      assertThrowsCode(() => cosineMseLoss(x, unit(3, d, 6), new Float32Array(3), d), RangeError, 'ERR_LABORSPACE_NON_FINITE', new RegExp(`left row ${Math.floor(at / d)}, column ${at % d} is not finite`));
    }
});

Losses('should write the gradients into caller-given arrays, overwriting what was there', () => {
  const B = 6, d = 8;
  const a = unit(B, d, 70), p = unit(B, d, 71), n = unit(B, d, 72);
  const targets = Float32Array.from(randomMatrix(B, 1, 73), Math.abs);
  const stale = () => new Float32Array(B * d).fill(123);
  // The triplet loss's inactive rows (a large negative margin) must be zeroed, not left stale.
  const cases: [string, (out: Record<string, Float32Array>) => object, string[]][] = [
    ['mnrl', (out) => mnrlLoss(a, p, d, { symmetric: true, out }), ['gradAnchors', 'gradPositives']],
    ['triplet', (out) => tripletLoss(a, p, n, d, { margin: -0.5, out }), ['gradAnchors', 'gradPositives', 'gradNegatives']],
    ['cosine_mse', (out) => cosineMseLoss(a, p, targets, d, { out }), ['gradLeft', 'gradRight']],
    ['cosent', (out) => cosentLoss(a, p, targets, d, { out }), ['gradLeft', 'gradRight']],
  ];
  for (const [name, run, grads] of cases) {
    const fresh = run(undefined as unknown as Record<string, Float32Array>) as Record<string, unknown>;
    const out = Object.fromEntries(grads.map((g) => [g, stale()]));
    const given = run(out) as Record<string, unknown>;
    for (const g of grads) {
      assert.ok(given[g] === out[g], `${name}: ${g} is the given array`);
      assert.equal(Array.from(given[g] as Float32Array), Array.from(fresh[g] as Float32Array), `${name}: ${g}`);
    }
  }
  assertThrowsCode(() => mnrlLoss(a, p, d, { out: { gradAnchors: new Float32Array(3) } }), RangeError, 'ERR_LABORSPACE_DIMENSION', /out.gradAnchors has 3 values, expected 48/);
  assertThrowsCode(() => cosentLoss(a, p, targets, d, { out: { gradRight: new Float64Array(B * d) as unknown as Float32Array } }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /out.gradRight must be a Float32Array/);
});

Losses.run();

const Head = suite('head');

Head('should give unit embeddings and the gradients of W and bias on every ISA', () => {
  forEachIsa(() => {
    // Large weights drive tanh into saturation in places, where the vector tanh must still agree.
    for (const [B, d, spread] of [[5, 9, 0.3], [16, 40, 0.3], [9, 70, 4]]) {
      const dOut = d + 3;
      const x = randomMatrix(B, d, 10);
      const w = randomMatrix(dOut, d, 11).map((v) => v * spread);
      const bias = randomMatrix(1, dOut, 12).map((v) => v * 0.1);
      const out = headForward(x, d, w, bias, dOut);
      const ref = headForwardRef(x, d, w, bias, dOut);
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(out.embeddings[i] - ref[i]) < 1e-5, `embedding ${i}`);
      // L = sum(e * G): dL/de = G.
      const g = randomMatrix(B, dOut, 13);
      const loss = (e: Float64Array) => e.reduce((s, v, i) => s + v * g[i], 0);
      const grads = headBackward(x, out, g, d, dOut);
      checkGradient('dW', w, grads.gradWeight, (wx) => loss(headForwardRef(x, d, wx, bias, dOut)), 14);
      checkGradient('dbias', bias, grads.gradBias, (bx) => loss(headForwardRef(x, d, w, bx, dOut)), 15);
    }
    });
    assertThrowsCode(() => headForward(randomMatrix(2, 4, 1), 4, randomMatrix(3, 5, 1), new Float32Array(3), 3), RangeError, 'ERR_LABORSPACE_DIMENSION', /weight has 15 values, not a multiple of dim 4/);
  });

Head('should add the low-rank adapter after tanh and give the gradients of all four tensors on every ISA', () => {
  forEachIsa(() => {
    for (const [B, d, dOut, rank] of [[5, 9, 12, 1], [16, 40, 33, 4], [9, 70, 64, 7]]) {
      const x = randomMatrix(B, d, 50);
      const w = randomMatrix(dOut, d, 51).map((v) => v * 0.3);
      const bias = randomMatrix(1, dOut, 52).map((v) => v * 0.1);
      const adapter = { rank, down: randomMatrix(rank, dOut, 53).map((v) => v * 0.3), up: randomMatrix(dOut, rank, 54).map((v) => v * 0.3) };
      const out = headForward(x, d, w, bias, dOut, adapter);
      const ref = headForwardRef(x, d, w, bias, dOut, adapter);
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(out.embeddings[i] - ref[i]) < 1e-5, `embedding ${i}`);
      const g = randomMatrix(B, dOut, 55);
      const loss = (e: Float64Array) => e.reduce((s, v, i) => s + v * g[i], 0);
      const grads = headBackward(x, out, g, d, dOut, adapter);
      checkGradient('dW', w, grads.gradWeight, (wx) => loss(headForwardRef(x, d, wx, bias, dOut, adapter)), 56);
      checkGradient('dbias', bias, grads.gradBias, (bx) => loss(headForwardRef(x, d, w, bx, dOut, adapter)), 57);
      checkGradient('ddown', adapter.down, grads.gradAdapterDown!, (dx) => loss(headForwardRef(x, d, w, bias, dOut, { ...adapter, down: dx })), 58);
      checkGradient('dup', adapter.up, grads.gradAdapterUp!, (ux) => loss(headForwardRef(x, d, w, bias, dOut, { ...adapter, up: ux })), 59);
    }
  });
  // With up = 0 the adapter is the identity: the pretrained head's embeddings, unchanged.
  const x = randomMatrix(4, 6, 60), w = randomMatrix(8, 6, 61), bias = new Float32Array(8);
  const plain = headForward(x, 6, w, bias, 8).embeddings;
  assert.equal(Array.from(headForward(x, 6, w, bias, 8, { rank: 2, down: randomMatrix(2, 8, 62), up: new Float32Array(16) }).embeddings), Array.from(plain));
  assertThrowsCode(() => headForward(x, 6, w, bias, 8, { rank: 9, down: randomMatrix(9, 8, 1), up: randomMatrix(8, 9, 1) }), RangeError, 'ERR_LABORSPACE_RANGE', /adapter rank must be an integer from 1 to 8, got 9/);
  assertThrowsCode(() => headForward(x, 6, w, bias, 8, { rank: 2, down: randomMatrix(3, 8, 1), up: randomMatrix(8, 2, 1) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /adapter down has 3 rows, expected 2/);
  assertThrowsCode(() => headForward(x, 6, w, bias, 8, { rank: 2, down: randomMatrix(2, 8, 1), up: randomMatrix(3, 8, 1) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /adapter up has 12 rows, expected 8/);
  const huge = { rank: 2, down: new Float32Array(16).fill(1e30), up: new Float32Array(16).fill(1e30) };
  assertThrowsCode(() => headForward(x, 6, w, bias, 8, huge), RangeError, 'ERR_LABORSPACE_NON_FINITE', /the adapter's output for row 0 is not finite/);
});

  Head.run();

  const AdamW = suite('adamwStep');

  AdamW('should follow the AdamW update with bias correction and decoupled weight decay', () => {
    const params = Float32Array.from([0.5, -1, 2]);
    const m = new Float32Array(3);
    const v = new Float32Array(3);
    const expected = Float64Array.from(params);
    const em = new Float64Array(3);
    const ev = new Float64Array(3);
    for (let step = 1; step <= 3; step++) {
      const grads = Float32Array.from([0.1 * step, -0.2, 0.05]);
      adamwStep(params, grads, m, v, { lr: 0.01, weightDecay: 0.1, step });
      for (let i = 0; i < 3; i++) {
        em[i] = 0.9 * em[i] + 0.1 * grads[i];
        ev[i] = 0.999 * ev[i] + 0.001 * grads[i] ** 2;
        const update = em[i] / (1 - 0.9 ** step) / (Math.sqrt(ev[i] / (1 - 0.999 ** step)) + 1e-8);
        expected[i] -= 0.01 * (update + 0.1 * expected[i]);
      }
    }
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(params[i] - expected[i]) < 1e-6, `param ${i}: ${params[i]} vs ${expected[i]}`);
    assertThrowsCode(() => adamwStep(params, new Float32Array(2), m, v, { lr: 0.01, step: 1 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /grads/);
    assertThrowsCode(() => adamwStep(params, params, m, v, { lr: 0.01, step: 0 }), RangeError, 'ERR_LABORSPACE_RANGE', /step must be an integer from 1/);
  });

  AdamW.run();

const Step = suite('headLossStep');

const x2 = (rows: number, d: number) => randomMatrix(2 * rows, d, 40);

Step('should equal the head run side by side, for every loss', () => {
  const B = 6, d = 10, dOut = 12;
  const head = { weight: randomMatrix(dOut, d, 20).map((v) => v * 0.3), bias: randomMatrix(1, dOut, 21), dimIn: d, dimOut: dOut };
  const targets = Float32Array.from(randomMatrix(B, 1, 22), (v) => Math.abs(v));
  for (const loss of ['mnrl', 'triplet', 'cosent', 'cosine_mse'] as const) {
    const sides = Array.from({ length: lossSides(loss) }, (_, s) => randomMatrix(B, d, 30 + s));
    const x = new Float32Array(sides.length * B * d);
    sides.forEach((side, s) => x.set(side, s * B * d));
    const step = headLossStep(loss, x, d, head.weight, head.bias, dOut, { scale: 20, margin: 0.25, targets, weight: 0.5, device: 'cpu' });
    assert.is(step.device, 'cpu');
    // The same step, one side at a time.
    const outs = sides.map((side) => headForward(side, d, head.weight, head.bias, dOut));
    const [a, p, n] = outs.map((o) => o.embeddings);
    const r =
      loss === 'mnrl' ? mnrlLoss(a, p, dOut, { scale: 20 }) : loss === 'triplet' ? tripletLoss(a, p, n, dOut, { margin: 0.25 }) : loss === 'cosent' ? cosentLoss(a, p, targets, dOut, { scale: 20 }) : cosineMseLoss(a, p, targets, dOut);
    const grads = 'gradAnchors' in r ? [r.gradAnchors, r.gradPositives, (r as { gradNegatives?: Float32Array }).gradNegatives] : [r.gradLeft, r.gradRight];
    const gw = new Float64Array(dOut * d);
    outs.forEach((o, s) => headBackward(sides[s], o, grads[s]!.map((v) => v * 0.5), d, dOut).gradWeight.forEach((v, i) => (gw[i] += v)));
    assert.ok(Math.abs(step.loss - r.loss) < 1e-6, `${loss} loss`);
    for (let i = 0; i < gw.length; i++) assert.ok(Math.abs(step.gradWeight![i] - gw[i]) < 1e-6, `${loss} dW[${i}]`);
  }
  const { weight, bias } = head;
  // With an adapter, and with the dense layer frozen: the adapter's gradients match the composed
  // path, and a frozen layer gets none.
  const adapter = { rank: 3, down: randomMatrix(3, dOut, 23).map((v) => v * 0.3), up: randomMatrix(dOut, 3, 24).map((v) => v * 0.3) };
  const sides = [randomMatrix(B, d, 30), randomMatrix(B, d, 31)];
  const x = new Float32Array(2 * B * d);
  sides.forEach((side, i) => x.set(side, i * B * d));
  for (const trainDense of [true, false]) {
    const step = headLossStep('mnrl', x, d, weight, bias, dOut, { adapter, trainDense, weight: 0.5, device: 'cpu' });
    const outs = sides.map((side) => headForward(side, d, weight, bias, dOut, adapter));
    const r = mnrlLoss(outs[0].embeddings, outs[1].embeddings, dOut, { scale: 20 });
    const parts = [r.gradAnchors, r.gradPositives].map((g, i) => headBackward(sides[i], outs[i], g.map((v) => v * 0.5), d, dOut, adapter));
    assert.ok(Math.abs(step.loss - r.loss) < 1e-6, 'adapter loss');
    for (const name of ['gradAdapterDown', 'gradAdapterUp'] as const)
      step[name]!.forEach((v, i) => assert.ok(Math.abs(v - (parts[0][name]![i] + parts[1][name]![i])) < 1e-6, `${name}[${i}]`));
    if (trainDense) step.gradWeight!.forEach((v, i) => assert.ok(Math.abs(v - (parts[0].gradWeight[i] + parts[1].gradWeight[i])) < 1e-6, `adapter dW[${i}]`));
    else assert.is(step.gradWeight, undefined, 'a frozen dense layer has no gradient');
  }
  // MNRL with 4 extra negatives and known positives excluded: the same as the head and mnrlLoss composed.
  const cands = randomMatrix(B + 4, d, 32);
  const xe = new Float32Array((2 * B + 4) * d);
  xe.set(sides[0]);
  xe.set(cands, B * d);
  const excluded = Uint8Array.from({ length: B * (B + 4) }, (_, k) => (k % 7 === 3 ? 1 : 0));
  const withExtra = headLossStep('mnrl', xe, d, weight, bias, dOut, { anchors: B, excluded, weight: 0.5, device: 'cpu' });
  const [ea, ec] = [sides[0], cands].map((m) => headForward(m, d, weight, bias, dOut));
  const re = mnrlLoss(ea.embeddings, ec.embeddings, dOut, { scale: 20, excluded });
  assert.ok(Math.abs(withExtra.loss - re.loss) < 1e-6 && Math.abs(re.loss - mnrlLoss(ea.embeddings, ec.embeddings, dOut).loss) > 1e-4, 'extra-negative loss');
  const ge = [headBackward(sides[0], ea, re.gradAnchors.map((v) => v * 0.5), d, dOut), headBackward(cands, ec, re.gradPositives.map((v) => v * 0.5), d, dOut)];
  withExtra.gradWeight!.forEach((v, i) => assert.ok(Math.abs(v - (ge[0].gradWeight[i] + ge[1].gradWeight[i])) < 1e-6, `extra dW[${i}]`));
  assertThrowsCode(() => headLossStep('triplet', xe, d, weight, bias, dOut, { anchors: B }), RangeError, 'ERR_LABORSPACE_DIMENSION', /only the MNRL loss takes extra negatives/);
  assertThrowsCode(() => headLossStep('mnrl', xe, d, weight, bias, dOut, { anchors: B, excluded: new Uint8Array(B) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /excluded has 6 values, expected 6 x 10/);
  assertThrowsCode(() => headLossStep('mnrl', xe, d, weight, bias, dOut, { anchors: 2 * B }), RangeError, 'ERR_LABORSPACE_RANGE', /anchors must be an integer from 1 to 8/);
  const out = { gradWeight: new Float32Array(dOut * d).fill(9), gradBias: new Float32Array(dOut).fill(9), gradAdapterDown: new Float32Array(3 * dOut), gradAdapterUp: new Float32Array(dOut * 3) };
  const into = headLossStep('mnrl', x, d, weight, bias, dOut, { adapter, out, device: 'cpu' });
  const fresh = headLossStep('mnrl', x, d, weight, bias, dOut, { adapter, device: 'cpu' });
  for (const name of Object.keys(out) as (keyof typeof out)[]) {
    assert.ok(into[name] === out[name], `${name} is the given array`);
    assert.equal(Array.from(into[name]!), Array.from(fresh[name]!), name);
  }
  assertThrowsCode(() => headLossStep('mnrl', x, d, weight, bias, dOut, { out: { gradBias: new Float32Array(dOut + 1) } }), RangeError, 'ERR_LABORSPACE_DIMENSION', /out.gradBias has 13 values, expected 12/);
  assertThrowsCode(() => headLossStep('mnrl', x, d, weight, bias, dOut, { trainDense: false }), RangeError, 'ERR_LABORSPACE_ARGUMENT', /nothing to train: the dense layer is frozen and there is no adapter/);
  assertThrowsCode(() => headLossStep('cosent', new Float32Array(2 * B * d), d, weight, bias, dOut), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /the cosent loss needs targets/);
  assertThrowsCode(() => headLossStep('triplet', new Float32Array((2 * B + 1) * d), d, weight, bias, dOut), RangeError, 'ERR_LABORSPACE_DIMENSION', /x has 13 rows: the triplet loss needs 3 equal sides/);
  assertThrowsCode(() => headLossStep('hinge' as 'mnrl', new Float32Array(2 * B * d), d, weight, bias, dOut), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /loss must be 'mnrl', 'triplet', 'cosine_mse' or 'cosent'/);
  assertThrowsCode(() => headLossStep('cosent', new Float32Array(2 * B * d), d, weight, bias, dOut, { targets: new Float32Array(B - 1) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /targets has 5 rows, expected 6/);
  assertThrowsCode(() => headLossStep('mnrl', new Float32Array(2 * B * d), d, weight, bias, dOut, { device: 'tpu' as 'cpu' }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /device must be 'auto', 'cpu' or 'cuda'/);
  // Extra negatives on a demanded GPU: refused, wherever the build or the device falls short first.
  const noCuda = nativeInfo().cuda.devices === 0 ? /this build has no CUDA support|no CUDA device is available/ : /the CUDA head step takes in-batch negatives only: extra negatives \(anchors\) need device 'cpu' or 'auto'/;
  assertThrowsCode(() => headLossStep('mnrl', xe, d, weight, bias, dOut, { anchors: B, excluded, device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', noCuda);
  assert.is(headLossStep('mnrl', xe, d, weight, bias, dOut, { anchors: B, excluded }).device, 'cpu', "'auto' with extra negatives runs on the CPU");
  if (nativeInfo().cuda.devices === 0) {
    assertThrowsCode(() => headLossStep('mnrl', x2(B, d), d, weight, bias, dOut, { device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /this build has no CUDA support|no CUDA device is available/);
    assert.is(headLossStep('mnrl', x2(B, d), d, weight, bias, dOut).device, 'cpu', "'auto' falls back to the CPU");
  }
});

Step.run();
