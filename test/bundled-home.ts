/**
 * The bundled data built once per test run into a home folder that persists in the system's
 * temporary directory, so that later runs reuse its embedding cache (the first run encodes the
 * corpus: a minute or two on two cores). Training is the default full fine-tune cut to a few
 * steps (the README's build runs the whole budget): the tests check the pipeline and that a
 * fine-tuned space still answers well, not the final quality.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { build, type BuildSummary } from '../src/build.js';

export const BUNDLED_HOME = join(tmpdir(), 'laborspace-test-bundled-space');
let built: Promise<BuildSummary> | undefined;

export function buildBundledHome(): Promise<BuildSummary> {
  built ??= build(BUNDLED_HOME, { train: { tune: 'full', encoder: { steps: 16, batchSize: 16, headSteps: 200 } } });
  return built;
}
