/**
 * The bundled data built once per test run into a home folder that persists in the system's
 * temporary directory, so that later runs reuse its embedding cache (the first run encodes the
 * corpus: a minute or two on two cores).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { build, type BuildSummary } from '../src/build.js';

export const BUNDLED_HOME = join(tmpdir(), 'laborspace-test-bundled-space');
let built: Promise<BuildSummary> | undefined;

export function buildBundledHome(): Promise<BuildSummary> {
  built ??= build(BUNDLED_HOME);
  return built;
}
