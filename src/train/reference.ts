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

/** MNRL: p holds the positives then any extra negatives; excluded[i * candidates + j] drops p_j from a_i's softmax (never its own). */
export function mnrlLossRef(a: ArrayLike<number>, p: ArrayLike<number>, d: number, scale: number, symmetric: boolean, excluded?: ArrayLike<number>): number {
  const B = a.length / d;
  const ce = (n: number, row: (i: number, j: number) => number, out: (i: number, j: number) => boolean) => {
    let loss = 0;
    for (let i = 0; i < B; i++) {
      const logits = Array.from({ length: n }, (_, j) => scale * row(i, j)).filter((_, j) => j === i || !out(i, j));
      const own = scale * row(i, i);
      const top = Math.max(...logits);
      loss += top + Math.log(logits.reduce((s, l) => s + Math.exp(l - top), 0)) - own;
    }
    return loss / B;
  };
  const C = p.length / d;
  const forward = ce(C, (i, j) => dot(a, i, p, j, d), (i, j) => Boolean(excluded?.[i * C + j]));
  return symmetric ? (forward + ce(B, (i, j) => dot(p, i, a, j, d), (i, j) => Boolean(excluded?.[j * C + i]))) / 2 : forward;
}

/** Distillation: weight x mean over pairs i != j of (e_i . e_j - t_i . t_j)^2. */
export function distillLossRef(e: ArrayLike<number>, t: ArrayLike<number>, d: number, weight: number): number {
  const R = e.length / d;
  let sum = 0;
  for (let i = 0; i < R; i++)
    for (let j = 0; j < R; j++) if (i !== j) sum += (dot(e, i, e, j, d) - dot(t, i, t, j, d)) ** 2;
  return (weight * sum) / (R * (R - 1));
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

type RefDims = { vocab?: number; embed: number; headOut: number; lnEps?: number; layers: { widthIn: number; widthOut: number; heads: number; ffn: number; residualProjection: boolean; queryScale: number }[] };
type RefLayout = readonly { name: string; offset: number; rows: number; cols: number }[];

/**
 * The whole encoder in float64 (native/src/encoder.h's graph): the oracle for the native forward
 * and, through finite differences, its backward. `params` is the native arena in `layout`'s order.
 */
export function encoderForwardRef(
  dims: RefDims,
  layout: RefLayout,
  params: ArrayLike<number>,
  timing: ArrayLike<number>,
  tokens: ArrayLike<number>,
  offsets: ArrayLike<number>,
  adapter?: { rank: number; down: ArrayLike<number>; up: ArrayLike<number> },
): Float64Array {
  const states = encoderStatesRef(dims, layout, params, timing, tokens, offsets);
  const texts = offsets.length - 1;
  const width = states[0].length;
  const pooledAll: number[] = [];
  for (let s = 0; s < texts; s++) {
    const rows = states.slice(offsets[s], offsets[s + 1]);
    for (let j = 0; j < width; j++) pooledAll.push(rows.reduce((acc, row) => acc + row[j], 0) / rows.length);
  }
  const at = new Map(layout.map((t) => [t.name, t.offset]));
  const head = at.get('head.weight')!, headBias = at.get('head.bias')!;
  const headWeight = Float64Array.from({ length: dims.headOut * width }, (_, i) => params[head + i]);
  const bias = Float64Array.from({ length: dims.headOut }, (_, i) => params[headBias + i]);
  return headForwardRef(pooledAll, width, headWeight, bias, dims.headOut, adapter);
}

/**
 * The masked-token loss in float64 (masked_token_step, native/src/encoder.cpp): the mean over positions of
 * -log softmax((states[r] proj + projBias) E^T + vocabBias)[target], E the embedding table.
 */
export function maskedTokenLossRef(dims: RefDims & { vocab: number }, layout: RefLayout, params: ArrayLike<number>, head: ArrayLike<number>, timing: ArrayLike<number>, tokens: ArrayLike<number>, offsets: ArrayLike<number>, positions: ArrayLike<number>, targets: ArrayLike<number>): number {
  const states = encoderStatesRef(dims, layout, params, timing, tokens, offsets);
  const width = states[0].length, E = dims.embed, V = dims.vocab;
  const table = layout.find((t) => t.name === 'embeddings')!.offset;
  let loss = 0;
  for (let i = 0; i < positions.length; i++) {
    const h = states[positions[i]];
    const z = Float64Array.from({ length: E }, (_, j) => {
      let acc = head[width * E + j];
      for (let c = 0; c < width; c++) acc += h[c] * head[c * E + j];
      return acc;
    });
    const logits = Array.from({ length: V }, (_, v) => {
      let acc = head[width * E + E + v];
      for (let j = 0; j < E; j++) acc += z[j] * params[table + v * E + j];
      return acc;
    });
    const top = Math.max(...logits);
    const sum = logits.reduce((a, l) => a + Math.exp(l - top), 0);
    loss += top + Math.log(sum) - logits[targets[i]];
  }
  return loss / positions.length;
}

/** The last layer's state of every token of the packed batch, in float64 (rows in packed order). */
export function encoderStatesRef(dims: RefDims, layout: RefLayout, params: ArrayLike<number>, timing: ArrayLike<number>, tokens: ArrayLike<number>, offsets: ArrayLike<number>): Float64Array[] {
  const at = new Map(layout.map((t) => [t.name, t.offset]));
  const offsetOf = (name: string) => at.get(name)!;
  const eps = dims.lnEps ?? 1e-6;
  const texts = offsets.length - 1;
  const states: Float64Array[] = [];
  // rows (T x n_in) times the [n_in, n_out] weight `key`, plus its bias.
  const dense = (rows: Float64Array[], key: string, nOut: number) => {
    const w = offsetOf(`${key}.weight`), b = offsetOf(`${key}.bias`);
    return rows.map((row) => {
      const out = new Float64Array(nOut);
      for (let o = 0; o < nOut; o++) out[o] = params[b + o];
      for (let i = 0; i < row.length; i++) {
        const base = w + i * nOut;
        for (let o = 0; o < nOut; o++) out[o] += row[i] * params[base + o];
      }
      return out;
    });
  };
  const layerNorm = (rows: Float64Array[], key: string) => {
    const scale = offsetOf(`${key}.scale`), bias = offsetOf(`${key}.bias`);
    return rows.map((row) => {
      const mu = row.reduce((a, v) => a + v, 0) / row.length;
      const variance = row.reduce((a, v) => a + (v - mu) ** 2, 0) / row.length;
      return row.map((v, j) => ((v - mu) / Math.sqrt(variance + eps)) * params[scale + j] + params[bias + j]);
    });
  };
  const embeddings = offsetOf('embeddings');
  for (let s = 0; s < texts; s++) {
    const T = offsets[s + 1] - offsets[s];
    let x = Array.from({ length: T }, (_, r) => {
      const tok = tokens[offsets[s] + r];
      return Float64Array.from({ length: dims.embed }, (_, j) => 2 * params[embeddings + tok * dims.embed + j] + timing[r * dims.embed + j]);
    });
    dims.layers.forEach((d, l) => {
      const wi = d.widthIn;
      const depth = wi / d.heads;
      const qkv = dense(layerNorm(x, `layer${l}.ln1`), `layer${l}.qkv`, 3 * wi);
      const ctx = Array.from({ length: T }, () => new Float64Array(wi));
      for (let h = 0; h < d.heads; h++)
        for (let i = 0; i < T; i++) {
          const scores = Array.from({ length: T }, (_, j) => {
            let acc = 0;
            for (let c = 0; c < depth; c++) acc += qkv[i][h * depth + c] * qkv[j][wi + h * depth + c];
            return acc * d.queryScale;
          });
          const top = Math.max(...scores);
          const ex = scores.map((v) => Math.exp(v - top));
          const sum = ex.reduce((a, v) => a + v, 0);
          for (let j = 0; j < T; j++) for (let c = 0; c < depth; c++) ctx[i][h * depth + c] += (ex[j] / sum) * qkv[j][2 * wi + h * depth + c];
        }
      const attended = dense(ctx, `layer${l}.out`, d.widthOut);
      const residual = d.residualProjection ? dense(x, `layer${l}.residual`, d.widthOut) : x;
      const x1 = attended.map((row, i) => row.map((v, j) => v + residual[i][j]));
      const f = dense(layerNorm(x1, `layer${l}.ln2`), `layer${l}.ffn1`, d.ffn).map((row) => row.map((v) => Math.max(0, v)));
      x = dense(f, `layer${l}.ffn2`, d.widthOut).map((row, i) => row.map((v, j) => v + x1[i][j]));
    });
    states.push(...x);
  }
  return states;
}
