/**
 * The bundled data built once per test run into a home folder that persists in the system's
 * temporary directory, so that later runs reuse it (the first run encodes the corpus: a minute or
 * two on two cores). Training is the default full fine-tune cut to a few steps (the README's build
 * runs the whole budget): the tests check the pipeline and that a fine-tuned space still answers
 * well, not the final quality.
 *
 * The folder is named by a hash of what makes the space (BUILT_FROM, the bundled data, the
 * package version and this file's options), so that code or data changed since a run cannot leave
 * the quality tests passing on the space the old code built. Folders of other keys are left alone:
 * another checkout of the project may be testing with them.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { build, type BuildSummary } from '../src/build.js';
import { processAlive } from '../src/util/process.js';
import { VERSION } from '../src/version.js';

const ROOT = join(import.meta.dirname, '..');
/** What the built space depends on: ingest, the model's conversion and encoding, training, the store, the native kernels, the data. Query-side code (analysis, server, CLI) is left out. */
const BUILT_FROM = ['src/build.ts', 'src/home.ts', 'src/native.ts', 'src/data', 'src/encoder', 'src/train', 'src/store', 'src/index', 'native/src', 'data', 'test/bundled-home.ts'];

/** Every file under `path` (or the file itself), sorted. */
function filesOf(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).sort().flatMap((name) => filesOf(join(path, name)));
}

/** sha256 of the package version and of the path and content of every file under `paths` (relative to `root`). */
export function bundledHomeKey(root = ROOT, paths: readonly string[] = BUILT_FROM): string {
  const hash = createHash('sha256').update(`laborspace ${VERSION}\n`);
  for (const file of paths.flatMap((p) => filesOf(join(root, p)))) hash.update(`${relative(root, file)}\n`).update(readFileSync(file));
  return hash.digest('hex');
}

export const BUNDLED_HOME = join(tmpdir(), `laborspace-test-bundled-space-${bundledHomeKey().slice(0, 16)}`);
/**
 * Held by the process building the home. Two test runs of one commit (two checkouts, or CI beside
 * the README's commands) share the home, and two builds of one home at once collide in its store
 * ("locked" midway); the second waits for the first, then reuses what it built.
 */
const BUILD_LOCK = `${BUNDLED_HOME}.lock`;
const LOCK_POLL_MS = 1000;
let built: Promise<BuildSummary> | undefined;

export function buildBundledHome(): Promise<BuildSummary> {
  built ??= holdingBuildLock(() => build(BUNDLED_HOME, { train: { tune: 'full', encoder: { steps: 16, batchSize: 16, headSteps: 200 } } }));
  return built;
}

async function holdingBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      writeFileSync(BUILD_LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder: number;
      try {
        holder = Number(readFileSync(BUILD_LOCK, 'utf8'));
      } catch {
        continue; // released meanwhile
      }
      if (!(holder > 0) || processAlive(holder)) await sleep(LOCK_POLL_MS); // no pid yet: just taken
      else rmSync(BUILD_LOCK, { force: true }); // its process ended without releasing it
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(BUILD_LOCK, { force: true });
  }
}
