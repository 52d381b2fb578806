// The tiny encoder the native-encoder and GPU tests share: odd sizes, so that no kernel's tiling
// lines up with them.
import { type Encoder, type EncoderDims } from '../src/native.js';
import { randomMatrix } from './helpers.js';

/** Tiny and odd: three heads of 2, a residual projection 6 -> 10, then a layer at 10 of two heads of 5. */
export const TINY: EncoderDims = {
  vocab: 11,
  embed: 6,
  maxTokens: 9,
  headOut: 5,
  lnEps: 1e-6,
  layers: [
    { widthIn: 6, widthOut: 10, heads: 3, ffn: 7, residualProjection: true, queryScale: 0.5 },
    { widthIn: 10, widthOut: 10, heads: 2, ffn: 13, residualProjection: false, queryScale: 0.3 },
  ],
};
export const TIMING = randomMatrix(TINY.maxTokens, TINY.embed, 3);
// The CPU kernels on every ISA; the GPU's are checked against them in test/gpu.test.ts.
export const CPU = { device: 'cpu' } as const;
// Texts of 4, 1, 3 and 9 tokens (the model's limit), token 5 repeated inside one.
export const BATCH = { tokens: Int32Array.from([1, 2, 3, 4, 0, 10, 5, 5, 5, 9, 8, 7, 6, 5, 4, 3, 2]), offsets: Int32Array.from([0, 4, 5, 8, 17]) };

export function tinyParams(encoder: Encoder, seed: number): Float32Array {
  const params = randomMatrix(1, encoder.paramCount, seed).map((v) => v * 0.5);
  for (const t of encoder.layout) if (t.name.endsWith('.scale')) encoder.tensor(params, t.name).fill(1);
  return params;
}

/** The cosine of row ai of a and row bi of b (rows of d values). */
export const cosine = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, d: number) => {
  let dot = 0, na = 0, nb = 0;
  for (let j = 0; j < d; j++) {
    dot += a[ai * d + j] * b[bi * d + j];
    na += a[ai * d + j] ** 2;
    nb += b[bi * d + j] ** 2;
  }
  return dot / Math.sqrt(na * nb);
};
