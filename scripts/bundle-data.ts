/**
 * Copies the subset of ../shared/data/raw that the default build reads into data/, gzip-
 * compressing text files (xlsx files are zip archives already and are copied as they are), and
 * prints each file's size and the sha256 of the original, which data/SOURCES.md records.
 * A maintainer's tool: users never run it, and nothing else depends on ../shared.
 * Usage: node --import tsx scripts/bundle-data.ts [RAW_DIR]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { BUNDLED_FILES } from '../src/data/bundled.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const raw = resolve(process.argv[2] ?? join(root, '..', 'shared', 'data', 'raw'));
const out = join(root, 'data');

let total = 0;
for (const file of BUNDLED_FILES) {
  const src = join(raw, file);
  const bytes = readFileSync(src);
  const sha = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dest = join(out, file.endsWith('.xlsx') ? file : `${file}.gz`);
  mkdirSync(dirname(dest), { recursive: true });
  if (file.endsWith('.xlsx')) copyFileSync(src, dest);
  else writeFileSync(dest, gzipSync(bytes, { level: 9 }));
  const size = statSync(dest).size;
  total += size;
  console.log(`${file}\t${bytes.length}\t${size}\tsha256:${sha}`);
}
console.log(`total ${(total / 1e6).toFixed(1)} MB in ${out}`);
