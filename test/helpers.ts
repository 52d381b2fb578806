import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';

import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

import { buildProgram } from '../src/cli/main.js';
import { nativeInfo, setIsa, type Isa } from '../src/native.js';

export { randomIndex, randomMatrix, seededRandom as rng } from '../src/util/random.js';

/**
 * A suite's set-up, run once before its tests, whose failure fails every one of them: uvu reports an
 * error thrown by a `before` hook as nothing at all (the suite shows 0 of N, the run exits 0).
 */
export function beforeAll(tests: Test, setUp: () => unknown): void {
  let failure: unknown;
  tests.before(async () => {
    try {
      await setUp();
    } catch (e) {
      failure = e;
    }
  });
  tests.before.each(() => {
    if (failure) throw failure;
  });
}

/** Runs body once per instruction set this CPU supports, then restores the best one. */
export function forEachIsa(body: (isa: Isa) => void): void {
  const { isas, isa: best } = nativeInfo();
  try {
    for (const isa of isas) {
      setIsa(isa);
      body(isa);
    }
  } finally {
    setIsa(best);
  }
}

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

/** Awaits a promise that must reject with an error of `type` whose message matches (and `code`, when given). */
export async function assertRejects(promise: Promise<unknown>, type: Function, message: RegExp, code?: string): Promise<void> {
  try {
    await promise;
  } catch (e) {
    assert.instance(e, type, `expected ${type.name}, got ${e}`);
    assert.match((e as Error).message, message);
    if (code !== undefined) assert.is((e as { code?: string }).code, code);
    return;
  }
  assert.unreachable(`expected ${type.name} ${message}`);
}

/** Runs the CLI in a child process (for what could hang the test process), stopped after a minute. */
export function spawnCli(...argv: string[]): SpawnSyncReturns<string> {
  const main = "import { main } from './src/cli/main.ts'; main([process.argv[0], 'laborspace', ...process.argv.slice(1)]).catch((e) => { console.error(e.message); process.exitCode = 1; });";
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', main, '--', ...argv], { cwd: join(import.meta.dirname, '..'), encoding: 'utf8', timeout: 60_000 });
}

/** Runs the CLI in process with argv, returning what it printed to stdout; errors propagate, progress on stderr is dropped. */
export async function runCli(...argv: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  const stderr = process.stderr.write;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  process.stderr.write = () => true;
  try {
    const program = buildProgram();
    for (const command of [program, ...program.commands])
      command.exitOverride().configureOutput({ writeErr: () => {}, writeOut: (s) => lines.push(s) });
    await program.parseAsync(['node', 'laborspace', ...argv]);
  } finally {
    console.log = log;
    process.stderr.write = stderr;
  }
  return lines.join('\n');
}

/** The central difference (loss(x + h e_i) - loss(x - h e_i)) / 2h, x[i] restored after. */
export function centralDifference(x: Float64Array, i: number, h: number, loss: () => number): number {
  const keep = x[i];
  x[i] = keep + h;
  const up = loss();
  x[i] = keep - h;
  const down = loss();
  x[i] = keep;
  return (up - down) / (2 * h);
}
