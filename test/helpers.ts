import * as assert from 'uvu/assert';

export { randomMatrix, seededRandom as rng } from '../src/util/random.js';

/** Tolerance for a float32 dot product of length `dim` against a float64 reference. */
export function dotTolerance(dim: number): number {
  return 1e-5 * (1 + dim);
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      assert.unreachable(`${what}[${i}]: ${actual[i]} vs expected ${expected[i]} (tolerance ${tol})`);
    }
  }
}

/** Throws unless fn throws an error of `type` whose message matches and whose code equals `code`. */
export function assertThrowsCode(fn: () => unknown, type: ErrorConstructor, code: string, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    const err = e as Error & { code?: string };
    assert.instance(err, type, `expected ${type.name}, got ${err.constructor.name}: ${err.message}`);
    assert.is(err.code, code, `code of "${err.message}"`);
    assert.match(err.message, message);
    return;
  }
  assert.unreachable(`expected ${code} to be thrown`);
}
