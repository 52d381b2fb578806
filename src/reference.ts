/**
 * Plain TypeScript versions of the native kernels: the oracle for tests and the "plain JS loop"
 * peer in benchmarks. Sums are in float64, so native float32 results agree to ~1e-5 relative.
 */
import type { Metric } from './native.js';

function rowNorm(x: Float32Array, row: number, dim: number): number {
  let s = 0;
  for (let p = 0; p < dim; p++) s += x[row * dim + p] * x[row * dim + p];
  return Math.sqrt(s);
}

export function normalizeRef(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    const norm = rowNorm(x, r, dim);
    for (let p = 0; p < dim; p++) out[r * dim + p] = norm > 0 ? x[r * dim + p] / norm : 0;
  }
  return out;
}

export function scoreRef(q: Float32Array, i: number, x: Float32Array, j: number, dim: number, metric: Metric): number {
  let dot = 0;
  for (let p = 0; p < dim; p++) dot += q[i * dim + p] * x[j * dim + p];
  if (metric === 'dot') return dot;
  const norms = rowNorm(q, i, dim) * rowNorm(x, j, dim);
  return norms > 0 ? dot / norms : 0;
}

export function similarityRef(q: Float32Array, x: Float32Array, dim: number, metric: Metric): Float64Array {
  const m = q.length / dim;
  const n = x.length / dim;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = scoreRef(q, i, x, j, dim, metric);
  return out;
}

export interface TopKRef {
  indices: number[][];
  scores: number[][];
}

/**
 * k best rows per query by score, ties by ascending index, over rows with a non-zero mask.
 * Keeps a sorted list of the best k per query (the plain-loop peer in the benchmarks).
 */
export function topkRef(q: Float32Array, x: Float32Array, dim: number, k: number, metric: Metric, mask?: Uint8Array): TopKRef {
  const m = q.length / dim;
  const n = x.length / dim;
  const result: TopKRef = { indices: [], scores: [] };
  for (let i = 0; i < m; i++) {
    const idx: number[] = [];
    const sc: number[] = [];
    for (let j = 0; j < n; j++) {
      if (mask && !mask[j]) continue;
      const s = scoreRef(q, i, x, j, dim, metric);
      if (idx.length === k && s <= sc[k - 1]) continue; // rows come in ascending order: a tie loses
      let pos = idx.length === k ? k - 1 : idx.length;
      while (pos > 0 && sc[pos - 1] < s) {
        sc[pos] = sc[pos - 1];
        idx[pos] = idx[pos - 1];
        pos--;
      }
      sc[pos] = s;
      idx[pos] = j;
    }
    result.indices.push(idx);
    result.scores.push(sc);
  }
  return result;
}

export function combineRef(x: Float32Array, dim: number, indices: Int32Array, weights: Float32Array, offsets: Int32Array): Float64Array {
  const count = offsets.length - 1;
  const out = new Float64Array(count * dim);
  for (let c = 0; c < count; c++)
    for (let t = offsets[c]; t < offsets[c + 1]; t++)
      for (let p = 0; p < dim; p++) out[c * dim + p] += weights[t] * x[indices[t] * dim + p];
  return out;
}

/** Round half to even, as the native code's nearbyint in the default rounding mode. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Symmetric per-row int8 codes and scales (scale = max|x| / 127, 1 for a zero row). */
export function quantizeRef(x: Float32Array, dim: number): { codes: Int8Array; scales: Float32Array } {
  const n = x.length / dim;
  const codes = new Int8Array(x.length);
  const scales = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let largest = 0;
    for (let p = 0; p < dim; p++) largest = Math.max(largest, Math.abs(x[r * dim + p]));
    const scale = largest > 0 ? Math.fround(Math.fround(largest) / 127) : 1;
    scales[r] = scale;
    const inverse = Math.fround(1 / scale);
    for (let p = 0; p < dim; p++) codes[r * dim + p] = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(x[r * dim + p] * inverse))));
  }
  return { codes, scales };
}

/** The approximate scores the int8 scan ranks rows by, for one query. */
export function quantizedScoresRef(q: Float32Array, codes: Int8Array, scales: Float32Array, dim: number): number[] {
  let largest = 0;
  for (let p = 0; p < dim; p++) largest = Math.max(largest, Math.abs(q[p]));
  const qScale = largest > 0 ? Math.fround(Math.fround(largest) / 127) : 1;
  const q8 = Array.from(q.subarray(0, dim), (v) => roundHalfEven(Math.fround(v / qScale)));
  return Array.from(scales, (scale, r) => {
    let dot = 0;
    for (let p = 0; p < dim; p++) dot += q8[p] * codes[r * dim + p];
    return dot * qScale * scale;
  });
}

/** op(a) op(b), m x n, with a stored m x k (k x m when transposeA) and b k x n (n x k when transposeB). */
export function matmulRef(a: Float32Array, b: Float32Array, m: number, n: number, k: number, transposeA: boolean, transposeB: boolean): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  return out;
}
