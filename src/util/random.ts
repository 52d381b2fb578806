/**
 * Seeded uniform generator on [-1, 1) (mulberry32): reproducible data for tests, benchmarks and
 * training. `state()` is the seed that continues the sequence from here (training checkpoints keep it).
 */
export function seededRandom(seed: number): (() => number) & { state: () => number } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
  return Object.assign(next, { state: () => a });
}

/** An index in [0, n) drawn from a seededRandom generator (uniform up to float rounding). */
export function randomIndex(next: () => number, n: number): number {
  return Math.floor(((next() + 1) / 2) * n) % n;
}

/** rows x dim matrix of seeded uniform values on [-1, 1). */
export function randomMatrix(rows: number, dim: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = next();
  return out;
}
