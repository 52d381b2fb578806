/**
 * Plain TypeScript (float64) versions of the training kernels' forward passes: the oracle for the
 * native losses and, through finite differences, for their gradients.
 */
const dot = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, d: number) => {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[ai * d + k] * b[bi * d + k];
  return s;
};

/** normalize(tanh(x W^T + bias) + adapter), the adapter (optional) being u = t + (t down^T) up^T. */
export function headForwardRef(
  x: ArrayLike<number>,
  dimIn: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  dimOut: number,
  adapter?: { rank: number; down: ArrayLike<number>; up: ArrayLike<number> },
): Float64Array {
  const batch = x.length / dimIn;
  const e = new Float64Array(batch * dimOut);
  const t = new Float64Array(dimOut);
  for (let i = 0; i < batch; i++) {
    for (let j = 0; j < dimOut; j++) t[j] = Math.tanh(dot(x, i, weight, j, dimIn) + bias[j]);
    const u = Float64Array.from(t);
    if (adapter) {
      const mid = Array.from({ length: adapter.rank }, (_, r) => dot(t, 0, adapter.down, r, dimOut));
      for (let j = 0; j < dimOut; j++) for (let r = 0; r < adapter.rank; r++) u[j] += mid[r] * adapter.up[j * adapter.rank + r];
    }
    const norm = Math.sqrt(u.reduce((s, v) => s + v * v, 0));
    for (let j = 0; j < dimOut; j++) e[i * dimOut + j] = u[j] / norm;
  }
  return e;
}

export function mnrlLossRef(a: ArrayLike<number>, p: ArrayLike<number>, d: number, scale: number, symmetric: boolean): number {
  const B = a.length / d;
  const ce = (row: (i: number, j: number) => number) => {
    let loss = 0;
    for (let i = 0; i < B; i++) {
      const logits = Array.from({ length: B }, (_, j) => scale * row(i, j));
      const top = Math.max(...logits);
      loss += top + Math.log(logits.reduce((s, l) => s + Math.exp(l - top), 0)) - logits[i];
    }
    return loss / B;
  };
  const forward = ce((i, j) => dot(a, i, p, j, d));
  return symmetric ? (forward + ce((i, j) => dot(p, i, a, j, d))) / 2 : forward;
}

export function tripletLossRef(a: ArrayLike<number>, p: ArrayLike<number>, n: ArrayLike<number>, d: number, margin: number, euclidean: boolean): number {
  const B = a.length / d;
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const dist = (x: ArrayLike<number>) => {
      if (!euclidean) return 1 - dot(a, i, x, i, d);
      let s = 0;
      for (let k = 0; k < d; k++) s += (a[i * d + k] - x[i * d + k]) ** 2;
      return Math.sqrt(s);
    };
    loss += Math.max(0, dist(p) - dist(n) + margin);
  }
  return loss / B;
}

export function cosineMseLossRef(a: ArrayLike<number>, b: ArrayLike<number>, t: ArrayLike<number>, d: number): number {
  const B = a.length / d;
  let loss = 0;
  for (let i = 0; i < B; i++) loss += (dot(a, i, b, i, d) - t[i]) ** 2;
  return loss / B;
}

export function cosentLossRef(a: ArrayLike<number>, b: ArrayLike<number>, t: ArrayLike<number>, d: number, scale: number): number {
  const B = a.length / d;
  const cos = Array.from({ length: B }, (_, i) => dot(a, i, b, i, d));
  let sum = 1;
  for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) if (t[i] > t[j]) sum += Math.exp(scale * (cos[j] - cos[i]));
  return Math.log(sum);
}
