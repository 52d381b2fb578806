/**
 * Copies the subset of ../shared/data/raw that the default build reads into data/, gzip-
 * compressing text files (xlsx files are zip archives already and are copied as they are; legacy
 * .xls files become CSV of their first sheet from the header row on, values unchanged, read with
 * SheetJS, a dev dependency used here only), and prints each file's size and the sha256 of the
 * original, which data/SOURCES.md records.
 * A maintainer's tool: users never run it, and nothing else depends on ../shared.
 * Usage: node --import tsx scripts/bundle-data.ts [RAW_DIR]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import XLSX from 'xlsx';

import { BUNDLED_FILES, XLS_HEADER_ROWS } from '../src/data/bundled.js';

function xlsToCsv(path: string, headerRow: number): Buffer {
  const book = XLSX.readFile(path);
  const sheet = book.Sheets[book.SheetNames[0]];
  const range = XLSX.utils.decode_range(sheet['!ref']!);
  range.s.r = headerRow - 1;
  sheet['!ref'] = XLSX.utils.encode_range(range);
  return Buffer.from(XLSX.utils.sheet_to_csv(sheet, { blankrows: false }), 'utf8');
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const raw = resolve(process.argv[2] ?? join(root, '..', 'shared', 'data', 'raw'));
const out = join(root, 'data');

let total = 0;
for (const file of BUNDLED_FILES) {
  const src = join(raw, file);
  const bytes = readFileSync(src);
  const sha = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const xls = file.endsWith('.xls');
  const dest = join(out, file.endsWith('.xlsx') ? file : xls ? file.replace(/\.xls$/, '.csv.gz') : `${file}.gz`);
  mkdirSync(dirname(dest), { recursive: true });
  if (file.endsWith('.xlsx')) copyFileSync(src, dest);
  else writeFileSync(dest, gzipSync(xls ? xlsToCsv(src, XLS_HEADER_ROWS[file]) : bytes, { level: 9 }));
  const size = statSync(dest).size;
  total += size;
  console.log(`${file}\t${bytes.length}\t${size}\tsha256:${sha}`);
}
console.log(`total ${(total / 1e6).toFixed(1)} MB in ${out}`);
