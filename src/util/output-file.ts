/**
 * Output files written whole or not at all: into a temporary file beside the target (the same
 * folder, so that the rename is atomic) renamed over it at the end. A run that fails or is killed
 * midway leaves whatever was at the target as it was. Output folders are made one level at a time.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { basename, dirname, join, resolve } from 'node:path';

function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = temporaryPath(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes `path` through a stream that `write` fills; the file appears only when `write` succeeds. */
export async function writeStreamAtomic<T>(path: string, write: (out: WriteStream) => Promise<T>): Promise<T> {
  const tmp = temporaryPath(path);
  const out = createWriteStream(tmp);
  let failure: Error | undefined;
  out.on('error', (e) => (failure ??= e));
  try {
    const result = await write(out);
    out.end();
    if (!out.closed) await once(out, 'close');
    if (failure) throw failure;
    renameSync(tmp, path);
    return result;
  } catch (e) {
    if (!out.closed) await new Promise<void>((closed) => out.destroy().once('close', closed));
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes a folder whole: `files` (paths relative to it, sub-folders made as needed) into
 * `DIR.tmp-PID` beside it, then renamed over `dir` (which is replaced). A killed writer leaves only
 * the temporary folder, which its name ties to the process.
 */
export function writeFolderAtomic(dir: string, files: Record<string, string | Uint8Array>): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const [file, content] of Object.entries(files)) {
    makeFolder(dirname(join(tmp, file)));
    writeFileSync(join(tmp, file), content);
  }
  rmSync(dir, { recursive: true, force: true });
  makeFolder(dirname(dir));
  renameSync(tmp, dir);
}

/**
 * Creates a folder and its missing parents one level at a time: `mkdirSync(..., { recursive: true })`
 * loops forever where the system refuses a folder inside an existing one (e.g. under /proc).
 */
export function makeFolder(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) mkdirSync(d);
}

/** Whether two paths name the same file (the same path, or links to one file). */
export function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  const sa = statSync(a, { throwIfNoEntry: false });
  const sb = statSync(b, { throwIfNoEntry: false });
  return !!sa && !!sb && sa.dev === sb.dev && sa.ino === sb.ino;
}
