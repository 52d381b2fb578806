/**
 * Principal components, shared by the maps (two components) and the indices' coarse scan (a few
 * dozen): rows centred on their mean taken in float64, C = (X - μ)ᵀ(X - μ) / n by the native matmul
 * on blocks of rows summed in float64 (XᵀX / n - μμᵀ in float32 cancels away the variance of a
 * space whose mean lies far from the origin), and C's leading eigenvectors by subspace iteration.
 */
import { matmul } from '../native.js';
import { seededRandom } from './random.js';

/** Subtracts the rows' mean from every row of x (n x dim, in place) and returns the mean. */
export function centreRows(x: Float32Array, dim: number): Float64Array {
  const n = x.length / dim;
  const mean = new Float64Array(dim);
  for (let i = 0; i < n * dim; i++) mean[i % dim] += x[i];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  for (let i = 0; i < n * dim; i++) x[i] -= mean[i % dim];
  return mean;
}

/** Rows per native product while the covariance is summed in float64. */
const COVARIANCE_BLOCK = 1024;

/** The covariance (dim x dim) of centred rows x, and its trace (the total variance). */
export function covarianceOf(x: Float32Array, dim: number): { covariance: Float32Array; trace: number } {
  const n = x.length / dim;
  const sum = new Float64Array(dim * dim);
  for (let start = 0; start < n; start += COVARIANCE_BLOCK) {
    const block = x.subarray(start * dim, Math.min(n, start + COVARIANCE_BLOCK) * dim);
    const part = matmul(block, block, { m: dim, n: dim, k: block.length / dim, transposeA: true });
    for (let i = 0; i < part.length; i++) sum[i] += part[i];
  }
  let trace = 0;
  for (let i = 0; i < dim; i++) trace += sum[i * dim + i] / n;
  return { covariance: Float32Array.from(sum, (v) => v / n), trace };
}

/**
 * The `count` leading eigenvectors (rows of `vectors`) and eigenvalues of a symmetric positive
 * semi-definite d x d matrix: subspace iteration, each step one native product C V and a
 * Gram-Schmidt pass, until the subspace stops turning or `maxIterations` steps (a coarse scan
 * needs the leading subspace, not each vector to 1e-6).
 */
export function leadingEigenvectors(c: Float32Array, d: number, count: number, options: { seed?: number; maxIterations?: number } = {}): { vectors: Float32Array; values: number[] } {
  const next = seededRandom(options.seed ?? 1);
  let v: Float32Array = Float32Array.from({ length: count * d }, () => next()); // count x d, rows the vectors
  const orthonormalize = (w: Float32Array) => {
    for (let e = 0; e < count; e++) {
      const row = w.subarray(e * d, (e + 1) * d);
      for (let f = 0; f < e; f++) {
        const prev = w.subarray(f * d, (f + 1) * d);
        let dot = 0;
        for (let i = 0; i < d; i++) dot += row[i] * prev[i];
        for (let i = 0; i < d; i++) row[i] -= dot * prev[i];
      }
      let norm = 0;
      for (let i = 0; i < d; i++) norm += row[i] * row[i];
      norm = Math.sqrt(norm);
      for (let i = 0; i < d; i++) row[i] = norm > 0 ? row[i] / norm : 0;
    }
    return w;
  };
  v = orthonormalize(v);
  const steps = options.maxIterations ?? 1000;
  for (let it = 0; it < steps; it++) {
    const w = orthonormalize(matmul(v, c, { m: count, n: d, k: d })); // (C V)ᵀ = Vᵀ C, C symmetric
    let change = 0;
    for (let i = 0; i < w.length; i++) change = Math.max(change, Math.abs(w[i] - v[i]));
    v = w;
    if (change < 1e-6) break;
  }
  const cv = matmul(v, c, { m: count, n: d, k: d });
  const values = Array.from({ length: count }, (_, e) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += cv[e * d + i] * v[e * d + i];
    return s;
  });
  return { vectors: v, values };
}
