/** The data every top-k case uses: seeded, unit-length rows, so 'ip' and 'dot' rank as cosine. */
import { normalize } from '../src/native.js';
import { randomMatrix } from '../src/util/random.js';

export const N = 20_000;
export const DIM = 512;
export const QUERIES = 1_000;
export const K = 10;
export const THREADS = 2;
/** Queries whose results are checked against the exact answer. */
export const RECALL_QUERIES = 50;

export function benchData(): { database: Float32Array; queries: Float32Array } {
  return {
    database: normalize(randomMatrix(N, DIM, 1), DIM, { inPlace: true }),
    queries: normalize(randomMatrix(QUERIES, DIM, 2), DIM, { inPlace: true }),
  };
}
