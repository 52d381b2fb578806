import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import {
  combine,
  matmul,
  meanRows,
  mnrlLoss,
  nativeInfo,
  normalize,
  project,
  quantize,
  setIsa,
  setThreads,
  similarity,
  similarityAsync,
  topk,
  topkAsync,
  topkQuantized,
  topkQuantizedAsync,
  type Isa,
  type Metric,
} from '../src/native.js';
import { combineRef, matmulRef, normalizeRef, quantizedScoresRef, quantizeRef, similarityRef, topkRef } from '../src/reference.js';
import { assertClose, assertRejects as rejects, assertThrowsCode, dotTolerance, forEachIsa, randomMatrix, rng } from './helpers.js';

const DIMS = [1, 3, 17, 511, 512, 513];
const METRICS: Metric[] = ['dot', 'cosine'];


/** Native top-k equals the reference: scores rank by rank, and indices wherever no near-tie makes the order arbitrary. */
function assertTopkMatches(q: Float32Array, x: Float32Array, dim: number, k: number, metric: Metric, what: string, mask?: Uint8Array) {
  const got = topk(q, x, dim, { k, metric, mask, device: 'cpu' });
  const ref = topkRef(q, x, dim, k, metric, mask);
  const m = q.length / dim;
  const kk = ref.indices[0]?.length ?? 0;
  assert.is(got.k, m === 0 ? Math.min(k, mask ? mask.reduce((a, b) => a + (b ? 1 : 0), 0) : x.length / dim) : kk, `${what}: k`);
  const tol = metric === 'dot' ? dotTolerance(dim) : 1e-5;
  for (let i = 0; i < m; i++) {
    const scores = got.scores.subarray(i * got.k, (i + 1) * got.k);
    assertClose(scores, ref.scores[i], tol, `${what}: query ${i} scores`);
    for (let r = 0; r < kk; r++) {
      const gapBefore = r > 0 ? ref.scores[i][r - 1] - ref.scores[i][r] : Infinity;
      const gapAfter = r + 1 < kk ? ref.scores[i][r] - ref.scores[i][r + 1] : Infinity;
      if (Math.min(gapBefore, gapAfter) > 2 * tol) assert.is(got.indices[i * got.k + r], ref.indices[i][r], `${what}: query ${i} rank ${r}`);
    }
  }
}

const TopK = suite('topk');

TopK('should match the reference for every ISA, metric and awkward dim (row path, packed path, both thread splits)', () => {
  forEachIsa((isa) => {
    for (const dim of DIMS) {
      for (const metric of METRICS) {
        // (queries, rows): single query; partial query panels; many rows (row split); many queries (query split).
        for (const [m, n] of [[1, 70], [5, 33], [13, 200], [25, 700], [300, 40]]) {
          const q = randomMatrix(m, dim, dim * 1000 + m);
          const x = randomMatrix(n, dim, dim * 7 + n);
          assertTopkMatches(q, x, dim, 10, metric, `${isa} dim ${dim} ${metric} m ${m} n ${n}`);
        }
      }
    }
  });
});

TopK('should return min(k, n) results when k exceeds the rows, and nothing for empty inputs', () => {
  const x = randomMatrix(7, 17, 1);
  const q = randomMatrix(3, 17, 2);
  const r = topk(q, x, 17, { k: 50 });
  assert.is(r.k, 7);
  assert.is(r.indices.length, 21);
  assert.equal([...r.indices.subarray(0, 7)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  const none = topk(new Float32Array(0), x, 17, { k: 5 });
  assert.is(none.k, 5);
  assert.is(none.indices.length, 0);
  const noRows = topk(q, new Float32Array(0), 17, { k: 5 });
  assert.is(noRows.k, 0);
  assert.is(noRows.scores.length, 0);
});

TopK('should only return rows the mask selects', () => {
  forEachIsa((isa) => {
    for (const [m, n] of [[1, 300], [30, 300]]) {
      const x = randomMatrix(n, 33, 5);
      const q = randomMatrix(m, 33, 6);
      const mask = Uint8Array.from({ length: n }, (_, j) => (j % 3 === 1 || (j > 100 && j < 140) ? 1 : 0));
      assertTopkMatches(q, x, 33, 12, 'cosine', `${isa} masked m ${m}`, mask);
      const r = topk(q, x, 33, { k: 12, mask });
      for (const j of r.indices) assert.ok(mask[j] === 1, `row ${j} is masked out`);
    }
    const empty = topk(randomMatrix(2, 4, 1), randomMatrix(9, 4, 2), 4, { k: 3, mask: new Uint8Array(9) });
    assert.is(empty.k, 0, `${isa}: nothing eligible`);
  });
});

TopK('should break equal scores by ascending row index', () => {
  forEachIsa((isa) => {
    const dim = 19;
    const base = randomMatrix(1, dim, 9);
    const x = new Float32Array(40 * dim);
    for (let j = 0; j < 40; j++) x.set(j % 4 === 0 ? base : randomMatrix(1, dim, 100 + j).map((v) => v * 0.01), j * dim);
    for (const m of [1, 14]) {
      const q = new Float32Array(m * dim);
      for (let i = 0; i < m; i++) q.set(base, i * dim);
      const r = topk(q, x, dim, { k: 10, metric: 'dot' });
      assert.equal([...r.indices.subarray(0, 10)], [0, 4, 8, 12, 16, 20, 24, 28, 32, 36], `${isa} m ${m}`);
    }
  });
});

TopK('should give the same answer on 1 and 2 threads', () => {
  const q = randomMatrix(40, 128, 3);
  const x = randomMatrix(3000, 128, 4);
  const threads = nativeInfo().threads;
  try {
    setThreads(1);
    const one = topk(q, x, 128, { k: 7 });
    setThreads(2);
    const two = topk(q, x, 128, { k: 7 });
    assert.equal([...one.indices], [...two.indices]);
    assert.equal([...one.scores], [...two.scores]);
  } finally {
    setThreads(threads);
  }
});

TopK('should reject bad arguments with typed errors that name them', () => {
  const x = randomMatrix(4, 3, 1);
  const q = randomMatrix(1, 3, 2);
  const call = (...args: unknown[]) => () => (topk as (...a: unknown[]) => unknown)(...args);
  assertThrowsCode(call([1, 2, 3], x, 3, { k: 1 }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /queries must be a Float32Array/);
  assertThrowsCode(call(q, new Float64Array(12), 3, { k: 1 }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /database must be a Float32Array/);
  assertThrowsCode(call(q, x, 0, { k: 1 }), RangeError, 'ERR_LABORSPACE_RANGE', /dim must be an integer from 1/);
  assertThrowsCode(call(q, x, 2.5, { k: 1 }), RangeError, 'ERR_LABORSPACE_RANGE', /dim must be an integer/);
  assertThrowsCode(call(q, x, '3', { k: 1 }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /dim must be a number/);
  assertThrowsCode(call(q, randomMatrix(1, 5, 1), 3, { k: 1 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /database has 5 values, not a multiple of dim 3/);
  assertThrowsCode(call(randomMatrix(1, 4, 1), x, 3, { k: 1 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /queries has 4 values/);
  assertThrowsCode(call(q, x, 3, { k: 0 }), RangeError, 'ERR_LABORSPACE_RANGE', /k must be an integer from 1 to 2147483647, got 0/);
  assertThrowsCode(call(q, x, 3, { k: 1.5 }), RangeError, 'ERR_LABORSPACE_RANGE', /k must be an integer/);
  assertThrowsCode(call(q, x, 3, {}), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /k must be a number/);
  assertThrowsCode(call(q, x, 3, { k: 1, metric: 'l2' }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /metric must be 'dot' or 'cosine'/);
  assertThrowsCode(call(q, x, 3, { k: 1, mask: [1, 1, 1, 1] }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /mask must be a Uint8Array/);
  assertThrowsCode(call(q, x, 3, { k: 1, mask: new Uint8Array(3) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /mask has 3 entries for 4 database rows/);
  assertThrowsCode(call(q, x, 3, { k: 1, device: 'tpu' }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /device must be 'auto', 'cpu' or 'cuda'/);
  if (!nativeInfo().cuda.compiled) {
    assertThrowsCode(call(q, x, 3, { k: 1, device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /no CUDA support/);
  } else if (nativeInfo().cuda.devices === 0) {
    assertThrowsCode(call(q, x, 3, { k: 1, device: 'cuda' }), Error, 'ERR_LABORSPACE_DEVICE', /no CUDA device/);
  }
});

TopK('should name the row and column of a NaN or infinity, and report overflow', () => {
  forEachIsa((isa) => {
    for (const m of [1, 20]) {
      const x = randomMatrix(50, 21, 1);
      x[37 * 21 + 4] = NaN;
      assertThrowsCode(() => topk(randomMatrix(m, 21, 2), x, 21, { k: 3 }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /database row 37, column 4 is NaN/);
      x[37 * 21 + 4] = 0;
      x[12 * 21 + 20] = -Infinity;
      assertThrowsCode(() => topk(randomMatrix(m, 21, 2), x, 21, { k: 3, metric: 'dot' }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /database row 12, column 20 is infinite/);
      x[12 * 21 + 20] = 0;
      x.fill(3e38, 5 * 21, 6 * 21);
      assertThrowsCode(() => topk(new Float32Array(m * 21).fill(1e10), x, 21, { k: 3, metric: 'dot' }), RangeError, 'ERR_LABORSPACE_OVERFLOW', /database row 5 overflows float32/);
      const q = randomMatrix(m, 21, 3);
      q[q.length - 1] = Infinity;
      assertThrowsCode(() => topk(q, randomMatrix(5, 21, 1), 21, { k: 3 }), RangeError, 'ERR_LABORSPACE_NON_FINITE', new RegExp(`query row ${m - 1}, column 20 is infinite`));
    }
    void isa;
  });
  // A NaN in a row the mask excludes is never read.
  const x = randomMatrix(10, 4, 1);
  x[0] = NaN;
  const mask = new Uint8Array(10).fill(1);
  mask[0] = 0;
  assert.is(topk(randomMatrix(1, 4, 2), x, 4, { k: 2, mask }).k, 2);
});

const TopKAsync = suite('topkAsync');

TopKAsync('should resolve to the same result as topk', async () => {
  const q = randomMatrix(30, 64, 1);
  const x = randomMatrix(2000, 64, 2);
  const sync = topk(q, x, 64, { k: 5 });
  const pending = topkAsync(q, x, 64, { k: 5 });
  assert.instance(pending, Promise);
  const result = await pending;
  assert.equal([...result.indices], [...sync.indices]);
  assert.equal([...result.scores], [...sync.scores]);
  assert.is(result.k, 5);
});

TopKAsync('should reject bad arguments at once and bad values on settling', async () => {
  assertThrowsCode(() => topkAsync(new Float32Array(3), new Float32Array(4), 3, { k: 1 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /database has 4 values/);
  const x = randomMatrix(8, 4, 1);
  x[9] = NaN;
  try {
    await topkAsync(randomMatrix(1, 4, 1), x, 4, { k: 2 });
    assert.unreachable('should reject');
  } catch (e) {
    assert.instance(e, RangeError);
    assert.is((e as { code?: string }).code, 'ERR_LABORSPACE_NON_FINITE');
    assert.match((e as Error).message, /database row 2, column 1 is NaN/);
  }
});

TopKAsync.run();
TopK.run();

const Similarity = suite('similarity');

Similarity('should match the reference matrix for every ISA, metric and dim', () => {
  forEachIsa((isa) => {
    for (const dim of DIMS) {
      for (const metric of METRICS) {
        for (const [m, n] of [[1, 9], [13, 37], [40, 5]]) {
          const q = randomMatrix(m, dim, m + dim);
          const x = randomMatrix(n, dim, n * 3 + dim);
          const tol = metric === 'dot' ? dotTolerance(dim) : 1e-5;
          assertClose(similarity(q, x, dim, metric), similarityRef(q, x, dim, metric), tol, `${isa} dim ${dim} ${metric} ${m}x${n}`);
        }
      }
    }
  });
});

Similarity('should score zero vectors 0 under cosine and handle empty inputs', () => {
  const q = new Float32Array(6);
  const x = randomMatrix(2, 3, 1);
  assert.equal([...similarity(q, x, 3, 'cosine')], [0, 0, 0, 0]);
  assert.is(similarity(new Float32Array(0), x, 3).length, 0);
  assert.is(similarity(q, new Float32Array(0), 3).length, 0);
});

Similarity('should reject bad arguments', () => {
  assertThrowsCode(() => similarity(new Float32Array(4), new Float32Array(6), 3), RangeError, 'ERR_LABORSPACE_DIMENSION', /queries has 4 values/);
  assertThrowsCode(() => similarity(new Float32Array(3), new Float32Array(3), 3, 'manhattan' as Metric), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /metric/);
});

Similarity('should run asynchronously with the same result', async () => {
  const q = randomMatrix(20, 50, 1);
  const x = randomMatrix(300, 50, 2);
  assert.equal([...(await similarityAsync(q, x, 50, 'dot'))], [...similarity(q, x, 50, 'dot')]);
});

Similarity.run();

const Project = suite('project');

Project('should give the cosine of each vector with each axis', () => {
  const vectors = randomMatrix(1000, 24, 1);
  const axes = randomMatrix(3, 24, 2);
  assertClose(project(vectors, axes, 24), similarityRef(vectors, axes, 24, 'cosine'), 1e-5, 'project');
});

Project.run();

const Matmul = suite('matmul');

Matmul('should multiply in all four transpose forms at ragged shapes, on every ISA and on threads', () => {
  forEachIsa((isa) => {
    // Narrow ones ([70, 3, 33], [40, 7, 9], [300, 16, 512]) run as their transposes on the ISAs whose strips they would mostly pad.
    // The driver's other paths: rows taken in runs of several lengths ([2200, 40, 20]), strips in several
    // L2-sized groups ([40, 500, 600]), threads splitting strips instead of rows ([8, 1000, 600]),
    // depth in passes ([50, 70, 1000]).
    const shapes = [[1, 1, 1], [7, 17, 5], [13, 65, 33], [70, 129, 300], [200, 300, 100], [70, 3, 33], [40, 7, 9], [300, 16, 512],
      [2200, 40, 20], [40, 500, 600], [8, 1000, 600], [50, 70, 1000]];
    for (const [m, n, k] of shapes)
      for (const transposeA of [false, true])
        for (const transposeB of [false, true]) {
          const a = randomMatrix(m * k, 1, m + k), b = randomMatrix(k * n, 1, n + k);
          const got = matmul(a, b, { m, n, k, transposeA, transposeB });
          assertClose(got, matmulRef(a, b, m, n, k, transposeA, transposeB), dotTolerance(k), `${isa} ${m}x${n}x${k} ${transposeA ? 'T' : 'N'}${transposeB ? 'T' : 'N'}`);
        }
  });
});

Matmul('should give bit-identical products on 1, 2 and 3 threads, however the threads share the row tiles', () => {
  // Threads take runs of row tiles as they free up, so which thread makes a tile changes from run to run.
  const threads = nativeInfo().threads;
  try {
    for (const [m, n, k] of [[2200, 40, 20], [500, 300, 1000], [9, 700, 64]]) {
      const a = randomMatrix(m * k, 1, m), b = randomMatrix(k * n, 1, n);
      const products = [1, 2, 3, 2].map((t) => {
        setThreads(t);
        return matmul(a, b, { m, n, k, transposeB: true });
      });
      for (const [i, p] of products.entries()) assert.ok(p.every((v, j) => v === products[0][j]), `${m}x${n}x${k}: run ${i} differs`);
    }
  } finally {
    setThreads(threads);
  }
});

Matmul('should write into a given array, overwriting what it held', () => {
  const a = randomMatrix(7, 5, 1), b = randomMatrix(5, 9, 2);
  const product = new Float32Array(7 * 9).fill(NaN);
  const got = matmul(a, b, { m: 7, n: 9, k: 5, out: { product } });
  assert.ok(got === product, 'the given array is returned');
  assertClose(got, matmulRef(a, b, 7, 9, 5, false, false), dotTolerance(5), 'into the given array');
});

Matmul('should reject operands of the wrong size and non-finite values', () => {
  assertThrowsCode(() => matmul(new Float32Array(6), new Float32Array(6), { m: 2, n: 3, k: 2 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /a has 3 rows, expected 2/);
  assertThrowsCode(() => matmul(new Float32Array(4), new Float32Array(5), { m: 2, n: 3, k: 2 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /b has 5 values, not a multiple of dim 3/);
  assertThrowsCode(() => matmul(Float32Array.of(1, NaN, 0, 0), new Float32Array(6), { m: 2, n: 3, k: 2 }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /a row 0, column 1 is not finite/);
  assertThrowsCode(() => matmul(new Float32Array(4), new Float32Array(6), { m: 0, n: 3, k: 2 }), RangeError, 'ERR_LABORSPACE_RANGE', /m must be an integer from 1/);
  assertThrowsCode(() => matmul(new Float32Array(4), new Float32Array(6), { m: 2, n: 3, k: 2, out: { product: new Float32Array(5) } }), RangeError, 'ERR_LABORSPACE_DIMENSION', /out.product has 5 values, expected 6/);
  assertThrowsCode(() => matmul(new Float32Array(4), new Float32Array(6), { m: 2, n: 3, k: 2, out: { product: new Float64Array(6) as unknown as Float32Array } }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /out.product must be a Float32Array/);
});

Matmul.run();

const Normalize = suite('normalize');

Normalize('should L2-normalise rows for every ISA and keep zero rows zero', () => {
  forEachIsa((isa) => {
    for (const dim of DIMS) {
      const x = randomMatrix(9, dim, dim);
      x.fill(0, 0, dim);
      const out = normalize(x, dim);
      assertClose(out, normalizeRef(x, dim), 1e-6, `${isa} dim ${dim}`);
      assert.is.not(out, x);
    }
  });
});

Normalize('should work in place when asked', () => {
  const x = randomMatrix(5, 8, 1);
  const expected = normalizeRef(x, 8);
  const out = normalize(x, 8, { inPlace: true });
  assert.is(out, x);
  assertClose(x, expected, 1e-6, 'in place');
});

Normalize('should reject non-finite values and bad shapes', () => {
  const x = randomMatrix(3, 4, 1);
  x[6] = NaN;
  assertThrowsCode(() => normalize(x, 4), RangeError, 'ERR_LABORSPACE_NON_FINITE', /vectors row 1, column 2 is not finite/);
  assertThrowsCode(() => normalize(new Float32Array(5), 4), RangeError, 'ERR_LABORSPACE_DIMENSION', /vectors has 5 values/);
  assertThrowsCode(() => normalize(new Int32Array(4) as unknown as Float32Array, 4), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /vectors must be a Float32Array/);
});

Normalize.run();

const Combine = suite('combine');

Combine('should sum weighted rows for every ISA and dim', () => {
  forEachIsa((isa) => {
    for (const dim of DIMS) {
      const x = randomMatrix(20, dim, dim + 1);
      const next = rng(dim);
      const indices = Int32Array.from({ length: 30 }, (_, t) => (t * 7) % 20);
      const weights = Float32Array.from({ length: 30 }, next);
      const offsets = Int32Array.from([0, 1, 1, 10, 30]);
      assertClose(combine(x, dim, { indices, weights, offsets }), combineRef(x, dim, indices, weights, offsets), 1e-5, `${isa} dim ${dim}`);
    }
  });
});

Combine('should reject bad combinations', () => {
  const x = randomMatrix(5, 3, 1);
  const ok = { indices: Int32Array.from([0, 4]), weights: Float32Array.from([1, -1]), offsets: Int32Array.from([0, 2]) };
  assertThrowsCode(() => combine(x, 3, { ...ok, indices: Int32Array.from([0, 5]) }), RangeError, 'ERR_LABORSPACE_RANGE', /indices\[1\] = 5 is out of range for 5 rows/);
  assertThrowsCode(() => combine(x, 3, { ...ok, indices: Int32Array.from([-1, 0]) }), RangeError, 'ERR_LABORSPACE_RANGE', /indices\[0\] = -1/);
  assertThrowsCode(() => combine(x, 3, { ...ok, weights: Float32Array.from([1]) }), RangeError, 'ERR_LABORSPACE_DIMENSION', /weights has 1 entries for 2 indices/);
  assertThrowsCode(() => combine(x, 3, { ...ok, weights: Float32Array.from([1, NaN]) }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /weights\[1\] is not finite/);
  assertThrowsCode(() => combine(x, 3, { ...ok, offsets: Int32Array.from([0, 1]) }), RangeError, 'ERR_LABORSPACE_RANGE', /offsets must start at 0 and end at the number of indices/);
  assertThrowsCode(() => combine(x, 3, { ...ok, offsets: Int32Array.from([0, 2, 1, 2]) }), RangeError, 'ERR_LABORSPACE_RANGE', /offsets must not decrease \(at 2\)/);
  assertThrowsCode(() => combine(x, 3, { ...ok, offsets: [0, 2] as unknown as Int32Array }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /offsets must be a Int32Array/);
});

Combine.run();

const MeanRows = suite('meanRows');

MeanRows('should average each subset', () => {
  const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
  assert.equal([...meanRows(x, 2, [[0, 2], [1], [0, 1, 2]])], [3, 4, 3, 4, 3, 4]);
});

MeanRows('should reject an empty subset', () => {
  try {
    meanRows(new Float32Array(4), 2, [[0], []]);
    assert.unreachable('should throw');
  } catch (e) {
    assert.instance(e, RangeError);
    assert.match((e as Error).message, /subset 1 is empty/);
  }
});

MeanRows.run();

const Quantized = suite('quantize and topkQuantized');

Quantized('should quantize rows as the reference does, zero rows included', () => {
  for (const dim of DIMS) {
    const x = randomMatrix(9, dim, dim + 5);
    x.fill(0, 0, dim);
    const got = quantize(x, dim);
    const ref = quantizeRef(x, dim);
    assert.equal(Array.from(got.codes), Array.from(ref.codes), `codes, dim ${dim}`);
    assertClose(got.scales, ref.scales, 0, `scales, dim ${dim}`);
  }
});

Quantized('should return the exact top-k when every row is a candidate, for every ISA', () => {
  forEachIsa((isa) => {
    for (const dim of [3, 17, 511, 512, 513]) {
      const x = normalize(randomMatrix(700, dim, dim), dim);
      const q = randomMatrix(3, dim, dim + 1);
      const codes = quantize(x, dim);
      const got = topkQuantized(q, codes, x, dim, { k: 10, candidates: 700 });
      const exact = topk(q, x, dim, { k: 10, metric: 'dot' });
      assert.equal(Array.from(got.indices), Array.from(exact.indices), `${isa} dim ${dim}`);
      assertClose(got.scores, exact.scores, dotTolerance(dim), `${isa} dim ${dim} scores`);
    }
  });
});

Quantized('should give the same answer off the event loop, and reject bad input there too', async () => {
  const dim = 64;
  const x = normalize(randomMatrix(500, dim, 5), dim);
  const q = randomMatrix(2, dim, 6);
  const codes = quantize(x, dim);
  const sync = topkQuantized(q, codes, x, dim, { k: 7, candidates: 40 });
  const async = await topkQuantizedAsync(q, codes, x, dim, { k: 7, candidates: 40 });
  assert.equal([Array.from(async.indices), Array.from(async.scores), async.k], [Array.from(sync.indices), Array.from(sync.scores), sync.k]);
  assert.throws(() => topkQuantizedAsync(q, { codes: codes.codes, scales: codes.scales.slice(1) }, x, dim, { k: 7, candidates: 40 }), /codes and scales must describe the 500 database rows/);
});

Quantized('should pick its candidates by the int8 scores of the reference, for every ISA', () => {
  forEachIsa((isa) => {
    for (const dim of [17, 512, 513]) {
      const x = randomMatrix(903, dim, dim + 2); // rows four at a time, and three alone
      const q = randomMatrix(1, dim, dim + 3);
      const codes = quantize(x, dim);
      const approx = quantizedScoresRef(q, codes.codes, codes.scales, dim);
      const expected = approx.map((s, r) => ({ s, r })).sort((a, b) => b.s - a.s || a.r - b.r).slice(0, 25).map((c) => c.r).sort((a, b) => a - b);
      const got = topkQuantized(q, codes, x, dim, { k: 25, candidates: 25 });
      assert.equal(Array.from(got.indices).sort((a, b) => a - b), expected, `${isa} dim ${dim}`);
    }
  });
});

/** Codes of x projected on `projection` (r x dim): what SpaceIndex scans for a type with a rank. */
function projectedCodes(x: Float32Array, dim: number, projection: Float32Array) {
  const r = projection.length / dim;
  const n = x.length / dim;
  const y = new Float32Array(n * r);
  for (let i = 0; i < n; i++) for (let j = 0; j < r; j++) {
    let s = 0;
    for (let p = 0; p < dim; p++) s += x[i * dim + p] * projection[j * dim + p];
    y[i * r + j] = s;
  }
  return { ...quantize(y, r), projection };
}

Quantized('should scan codes of a projection: candidates by the projected int8 scores, answers exact, for every ISA', () => {
  forEachIsa((isa) => {
    for (const [dim, r] of [[17, 5], [512, 64], [513, 128]]) {
      const x = randomMatrix(903, dim, dim + 4);
      const q = randomMatrix(1, dim, dim + 5);
      // A projection onto the first r coordinates: the projected query is exact, so the reference's
      // candidates are too.
      const select = new Float32Array(r * dim);
      for (let j = 0; j < r; j++) select[j * dim + j] = 1;
      const codes = projectedCodes(x, dim, select);
      const approx = quantizedScoresRef(q.subarray(0, r), codes.codes, codes.scales, r);
      const expected = approx.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s || a.i - b.i).slice(0, 25).map((c) => c.i).sort((a, b) => a - b);
      const got = topkQuantized(q, codes, x, dim, { k: 25, candidates: 25 });
      assert.equal(Array.from(got.indices).sort((a, b) => a - b), expected, `${isa} dim ${dim} rank ${r}`);
      // Any projection, several queries at once: with every row a candidate, the exact answer.
      const rotated = projectedCodes(x, dim, randomMatrix(r, dim, r));
      const queries = randomMatrix(3, dim, dim + 6);
      const all = topkQuantized(queries, rotated, x, dim, { k: 10, candidates: 903 });
      const exact = topk(queries, x, dim, { k: 10, metric: 'dot' });
      assert.equal(Array.from(all.indices), Array.from(exact.indices), `${isa} dim ${dim} rank ${r}, every row a candidate`);
    }
  });
});

Quantized('should reject a projection of the wrong shape or with non-finite values', async () => {
  const dim = 6;
  const x = randomMatrix(10, dim, 1);
  const q = randomMatrix(1, dim, 2);
  const codes = projectedCodes(x, dim, randomMatrix(2, dim, 3));
  assertThrowsCode(() => topkQuantized(q, { ...codes, projection: randomMatrix(1, dim + 1, 4) }, x, dim, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /projection/);
  assertThrowsCode(() => topkQuantized(q, { ...codes, projection: randomMatrix(dim + 1, dim, 4) }, x, dim, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /projection must have from 1 to 6 rows of 6, got 7/);
  assertThrowsCode(() => topkQuantized(q, { ...codes, projection: randomMatrix(3, dim, 4) }, x, dim, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /codes and scales must describe the 10 database rows in 3 dimensions/);
  const bad = codes.projection.slice();
  bad[7] = NaN;
  assertThrowsCode(() => topkQuantized(q, { ...codes, projection: bad }, x, dim, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /projection row 1, column 1 is not finite/);
  await rejects(Promise.resolve().then(() => topkQuantizedAsync(q, { ...codes, projection: bad }, x, dim, { k: 2, candidates: 5 })), RangeError, /projection row 1, column 1 is not finite/);
  const sync = topkQuantized(q, codes, x, dim, { k: 3, candidates: 4 });
  const async = await topkQuantizedAsync(q, codes, x, dim, { k: 3, candidates: 4 });
  assert.equal(Array.from(async.indices), Array.from(sync.indices), 'the same off the event loop');
});

Quantized('should reject codes of another matrix and bad values', () => {
  const x = randomMatrix(10, 4, 1);
  const codes = quantize(x, 4);
  assertThrowsCode(() => topkQuantized(randomMatrix(1, 4, 2), codes, randomMatrix(11, 4, 3), 4, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_DIMENSION', /codes and scales must describe the 11 database rows/);
  assertThrowsCode(() => topkQuantized(randomMatrix(1, 4, 2), codes, x, 4, { k: 2, candidates: 0 }), RangeError, 'ERR_LABORSPACE_RANGE', /candidates must be an integer from 1/);
  assertThrowsCode(() => topkQuantized(Float32Array.from([1, NaN, 0, 0]), codes, x, 4, { k: 2, candidates: 5 }), RangeError, 'ERR_LABORSPACE_NON_FINITE', /query row 0, column 1 is NaN/);
  assertThrowsCode(() => quantize(Float32Array.from([1, Infinity]), 2), RangeError, 'ERR_LABORSPACE_NON_FINITE', /vectors row 0, column 1 is not finite/);
  assertThrowsCode(() => topkQuantized(randomMatrix(1, 4, 2), { codes: new Uint8Array(40) as unknown as Int8Array, scales: codes.scales }, x, 4, { k: 2, candidates: 5 }), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /codes must be a Int8Array/);
});

Quantized('should score exactly past dim 2^17, where an int32 sum of int8 products overflows, for every ISA', () => {
  // Every code is 127, so a row's int8 dot is dim * 127^2: 2.26e9 here, past 2^31. Wrapped, the
  // row pointing away from the query would look best and be the one candidate re-scored.
  const dim = 140_001;
  const q = new Float32Array(dim).fill(1);
  const x = new Float32Array(2 * dim).fill(-1, 0, dim).fill(1, dim);
  const codes = quantize(x, dim);
  forEachIsa((isa) => {
    const got = topkQuantized(q, codes, x, dim, { k: 1, candidates: 1 });
    assert.equal([Array.from(got.indices), Array.from(got.scores)], [[1], [dim]], isa);
  });
});

Quantized.run();

const Dispatch = suite('dispatch');

Dispatch('should report the ISA in use and accept only supported ones', () => {
  const info = nativeInfo();
  assert.ok(info.isas.includes('scalar'));
  assert.is(info.isa, info.isas[0], 'the best ISA is chosen by default');
  assert.ok(info.threads >= 1);
  assertThrowsCode(() => setIsa('sse9' as Isa), TypeError, 'ERR_LABORSPACE_ARG_TYPE', /isa must be 'avx512', 'avx2' or 'scalar'/);
  assertThrowsCode(() => setThreads(0), RangeError, 'ERR_LABORSPACE_RANGE', /threads must be an integer from 1 to 1024/);
});

Dispatch("should run a thread's async kernels on it once it keeps them, and only that thread's", () => {
  // In a child process: keeping cannot be undone. A promise settled at once has run its `then`
  // after one microtask; one queued on libuv's pool has not.
  const addon = process.env.LABORSPACE_NATIVE || join(import.meta.dirname, '..', 'build', 'Release', 'laborspace_native.node');
  const script = `
    const { Worker } = require('node:worker_threads');
    const probe = \`
      const b = require(\${JSON.stringify(${JSON.stringify(addon)})});
      const x = new Float32Array(3000 * 16).map((_, i) => Math.sin(i)), q = x.slice(0, 32);
      const settledAtOnce = async () => {
        let settled = false;
        const p = b.topkAsync(q, x, 16, 5, 'dot');
        p.then(() => (settled = true));
        await Promise.resolve();
        const settledThen = settled;
        const r = await p;
        const sync = b.topk(q, x, 16, 5, 'dot');
        return { settled: settledThen, same: String(r.indices) === String(sync.indices) && String(r.scores) === String(sync.scores) };
      };
    \`;
    const worker = new Worker(probe + \`
      const { parentPort } = require('node:worker_threads');
      (async () => { const before = await settledAtOnce(); b.keepKernelsOnThisThread(); parentPort.postMessage({ before, after: await settledAtOnce() }); })();
    \`, { eval: true });
    worker.once('message', async (m) => {
      const settledAtOnce = eval(probe + '; settledAtOnce'); // the same probe on the main thread
      console.log(JSON.stringify({ ...m, main: await settledAtOnce() }));
      await worker.terminate();
    });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), {
    before: { settled: false, same: true },
    after: { settled: true, same: true },
    main: { settled: false, same: true },
  });
  const bad = spawnSync(process.execPath, ['-e', `const b = require(${JSON.stringify(addon)}); b.keepKernelsOnThisThread(); b.topkAsync(new Float32Array(3), new Float32Array(4), 2, 1, 'dot').catch((e) => console.log(e.code))`], { encoding: 'utf8' });
  assert.match(bad.stdout + bad.stderr, /ERR_LABORSPACE_DIMENSION/, 'bad input still throws or rejects with its code');
});

Dispatch('should survive a worker thread terminated while its async kernels run, on the pool or kept on the thread', () => {
  // A kernel finishing after its thread's environment is gone cannot settle its promise: that
  // used to throw a C++ exception nothing caught, and std::terminate took the process down. Kept
  // on the thread (the server's analysis threads), the promise is settled inside the call itself.
  const addon = process.env.LABORSPACE_NATIVE || join(import.meta.dirname, '..', 'build', 'Release', 'laborspace_native.node');
  const script = (keep: boolean) => `
    const { Worker } = require('node:worker_threads');
    const worker = new Worker(\`
      const { parentPort } = require('node:worker_threads');
      const b = require(\${JSON.stringify(${JSON.stringify(addon)})});
      ${keep ? 'b.keepKernelsOnThisThread();' : ''}
      const x = new Float32Array(20000 * 512).fill(0.01), q = new Float32Array(32 * 512).fill(0.02);
      (async () => { for (;;) { b.similarity(q, x, 512, 'dot'); b.normalize(x.subarray(0, 512 * 1000), 512); await Promise.all([b.topkAsync(q, x, 512, 10, 'dot'), b.similarityAsync(q, x, 512, 'dot')]); } })();
      parentPort.postMessage('running');
    \`, { eval: true });
    worker.once('message', () => setTimeout(() => worker.terminate().then(() => console.log('survived')), 150 + ${keep ? 'Math.random() * 50' : '0'}));
  `;
  for (const keep of [false, true])
    for (let run = 0; run < (keep ? 8 : 3); run++) {
      const r = spawnSync(process.execPath, ['-e', script(keep)], { encoding: 'utf8', timeout: 60_000 });
      assert.equal([r.status, r.signal, r.stdout.trim()], [0, null, 'survived'], `${keep ? 'kept on the thread' : 'on the pool'}, run ${run}: ${r.stderr}`);
    }
});

Dispatch('should keep NaN through the vectorised exp on every ISA, as the scalar path does', () => {
  // scale * 2 overflows to infinity, so row 0's softmax exponents are inf - inf = NaN; the AVX
  // kernels' clamp used to turn them finite, and the gradients with them.
  const nanMask = () => {
    const r = mnrlLoss(Float32Array.of(2, 1), Float32Array.of(1, 1), 1, { scale: 3e38 });
    return [...r.gradAnchors, ...r.gradPositives].map(Number.isNaN);
  };
  forEachIsa((isa) => assert.equal(nanMask(), [true, false, true, true], isa));
});

Dispatch.run();
