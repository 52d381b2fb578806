/**
 * Reads tabular files row by row, whatever their form: CSV, tab- or pipe-delimited text (each
 * optionally gzip-compressed, as the bundled data is), or Excel .xlsx. Rows come out as records
 * keyed by the header, with their line (or spreadsheet row) number for error messages. Text must
 * be UTF-8: other bytes fail the read at their offset, rather than becoming U+FFFD unseen.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';

import { CsvError, parse } from 'csv-parse';
import ExcelJS from 'exceljs';

import { IngestError } from './errors.js';
import type { IngestReport } from './report.js';

export interface TableRow {
  /** Line where the record starts (text files) or row number (xlsx), 1-based. */
  line: number;
  values: Record<string, string>;
}

export interface TableOptions {
  /** What to do with a malformed row: report and skip it (default), or fail the load. */
  onError?: 'skip' | 'fail';
  /** Receives skipped rows. */
  report?: IngestReport;
  /** Spreadsheet row holding the header (1-based, default 1). Text files: the first line. */
  headerRow?: number;
  /** Which worksheet of an .xlsx file, in file order (default 0). */
  sheetIndex?: number;
  /** Field delimiter of a text file, when not the one its suffix implies (e.g. ';' in a .csv). */
  delimiter?: string;
  /**
   * Columns the header must hold. Given them, the file is a source the load needs: a missing column,
   * an empty file or one without a single good row fails the read, naming the file.
   */
  columns?: readonly string[];
}

/** File name suffixes this reader understands, in the order `findTable` tries them. */
export const TABLE_SUFFIXES = ['.csv.gz', '.csv', '.txt.gz', '.txt', '.tsv.gz', '.tsv', '.psv.gz', '.psv', '.xlsx'] as const;

/** The first existing `base + suffix` among `suffixes`, or undefined. */
export function findTable(base: string, suffixes: readonly string[] = TABLE_SUFFIXES): string | undefined {
  return suffixes.map((s) => base + s).find((p) => existsSync(p));
}

/** Like findTable, but a missing file is an IngestError naming what was looked for. */
export function requireTable(base: string, suffixes: readonly string[] = TABLE_SUFFIXES): string {
  const found = findTable(base, suffixes);
  if (!found) throw new IngestError({ file: basename(base) }, `not found (looked for ${suffixes.map((s) => basename(base) + s).join(', ')})`);
  return found;
}

function delimiterFor(path: string): string {
  const plain = path.replace(/\.gz$/, '');
  if (plain.endsWith('.txt') || plain.endsWith('.tsv')) return '\t';
  if (plain.endsWith('.psv')) return '|';
  return ',';
}

/** A text file's bytes (gunzipped for .gz), checked to be UTF-8. */
export function openText(path: string): Readable {
  const raw = createReadStream(path);
  const checked = utf8Checked(basename(path), path.endsWith('.gz') ? ' of the decompressed text' : '');
  if (!path.endsWith('.gz')) {
    raw.on('error', (e) => checked.destroy(e));
    return raw.pipe(checked);
  }
  const gunzip = createGunzip();
  raw.on('error', (e) => gunzip.destroy(e));
  gunzip.on('error', (e) => checked.destroy(e));
  return raw.pipe(gunzip).pipe(checked);
}

/** Where the last, possibly unfinished, UTF-8 sequence of a chunk starts when it is unfinished (else the length). */
function completeUpTo(data: Uint8Array): number {
  let i = data.length - 1;
  while (i > 0 && data.length - i < 4 && (data[i] & 0xc0) === 0x80) i--;
  const lead = data[i];
  const needs = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i >= 0 && data.length - i < needs ? i : data.length;
}

/** The offset of the first byte that does not start a valid UTF-8 sequence (-1 when there is none). */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
    if (!n) return i;
    for (let k = 1; k < n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    // Overlong forms, surrogates and code points above U+10FFFF.
    if ((c === 0xe0 && b[i + 1] < 0xa0) || (c === 0xed && b[i + 1] >= 0xa0) || (c === 0xf0 && b[i + 1] < 0x90) || (c === 0xf4 && b[i + 1] >= 0x90)) return i;
    i += n;
  }
  return -1;
}

/** Passes text through unchanged, failing at the first byte that is not UTF-8 with its offset and line. */
function utf8Checked(file: string, of: string): Transform {
  let offset = 0;
  let line = 1;
  let carry: Buffer = Buffer.alloc(0);
  const linesIn = (b: Uint8Array) => {
    let n = 0;
    for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
    return n;
  };
  const invalid = (data: Buffer) => {
    const at = Math.max(0, firstInvalidUtf8(data));
    return new IngestError({ file, line: line + linesIn(data.subarray(0, at)) }, `not valid UTF-8 at byte offset ${offset + at}${of}: save it as UTF-8`);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const end = completeUpTo(data);
      const body = data.subarray(0, end);
      if (!isUtf8(body)) return done(invalid(body));
      line += linesIn(body);
      offset += end;
      carry = Buffer.from(data.subarray(end));
      done(null, body);
    },
    flush(done) {
      done(carry.length ? invalid(carry) : null);
    },
  });
}

/** Header names, trimmed; empty ones become `column<N>` so every field has a key. */
function headerNames(header: string[]): string[] {
  return header.map((h, i) => h.replace(/\s+/g, ' ').trim() || `column${i}`);
}

export async function* readTable(path: string, options: TableOptions = {}): AsyncGenerator<TableRow> {
  if (!existsSync(path)) throw new IngestError({ file: basename(path) }, 'file not found');
  if (path.endsWith('.xlsx')) {
    yield* readXlsx(path, options);
  } else {
    yield* readDelimited(path, options);
  }
}

async function* readDelimited(path: string, options: TableOptions): AsyncGenerator<TableRow> {
  const file = basename(path);
  const delimiter = options.delimiter ?? delimiterFor(path);
  const onError = options.onError ?? 'skip';
  // Records come as arrays with their raw text, so that the field count is checked here (against
  // the header) and every record's line is counted from the text itself: csv-parse's own line
  // counter drifts on CRLF files with empty lines.
  const parser = parse({
    bom: true,
    delimiter,
    // Tab- and pipe-delimited releases (O*NET text, SEC lists) do not quote fields.
    quote: delimiter === '\t' || delimiter === '|' ? false : '"',
    relax_column_count: true,
    skip_empty_lines: true,
    raw: true,
    skip_records_with_error: onError === 'skip',
  });
  parser.on('skip', (err: CsvError & { lines?: number }) => {
    options.report?.skip({ file, line: err.lines }, describeCsvError(err));
  });
  const source = openText(path);
  source.on('error', (e) => parser.destroy(e));
  source.pipe(parser);
  let header: string[] | undefined;
  let rows = 0;
  let breaks = 0; // line ends consumed before the current record
  try {
    for await (const { record, raw } of parser as AsyncIterable<{ record: string[]; raw: string }>) {
      // A raw record holds the empty lines before it, its own text and its line end (with CRLF the
      // final "\n" may be missing: a lone "\r" counts as a line end).
      const leading = /^(\r\n|\r|\n)*/.exec(raw)![0].match(/\r\n|\r|\n/g)?.length ?? 0;
      const line = breaks + leading + 1;
      breaks += raw.match(/\r\n|\r|\n/g)?.length ?? 0;
      if (!header) {
        header = headerNames(record);
        checkColumns(file, line, header, options.columns);
        continue;
      }
      if (record.length !== header.length) {
        const reason = `wrong number of fields (expected ${header.length}, got ${record.length})`;
        if (onError === 'fail') throw new IngestError({ file, line }, reason);
        options.report?.skip({ file, line }, reason);
        continue;
      }
      const values: Record<string, string> = {};
      header.forEach((h, i) => (values[h] = record[i]));
      rows++;
      yield { line, values };
    }
  } catch (e) {
    if (e instanceof IngestError) throw e;
    if (e instanceof CsvError) throw new IngestError({ file, line: (e as CsvError & { lines?: number }).lines }, describeCsvError(e));
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('Z_'))
      throw new IngestError({ file }, `not valid gzip data (${e.message})`);
    throw new IngestError({ file }, errorText(e));
  }
  checkRows(file, header, rows, options.columns);
}

/** The header must hold every required column. */
function checkColumns(file: string, line: number, header: readonly string[], columns: readonly string[] | undefined): void {
  const missing = columns?.find((c) => !header.includes(c));
  if (missing === undefined) return;
  const found = header.length > 20 ? `${header.slice(0, 20).join(', ')}, ...` : header.join(', ');
  throw new IngestError({ file, line, column: missing }, `no column "${missing}" in the header (found: ${found})`);
}

/** A required source must hold a header and at least one good row. */
function checkRows(file: string, header: readonly string[] | undefined, rows: number, columns: readonly string[] | undefined): void {
  if (!columns || rows > 0) return;
  throw new IngestError({ file }, header ? 'has a header but no rows it could read' : `is empty (expected a header with ${columns.join(', ')})`);
}

function describeCsvError(e: CsvError): string {
  switch (e.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'quoted field not closed';
    case 'INVALID_OPENING_QUOTE':
      // csv-parse's message quotes the whole field, however long.
      return 'a quote inside an unquoted field';
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'text after a closing quote';
    default:
      return e.message;
  }
}

function cellText(value: ExcelJS.CellValue): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') {
    if ('richText' in value) return value.richText.map((r) => r.text).join('');
    if ('text' in value && typeof value.text === 'string') return value.text;
    if ('result' in value) return cellText(value.result as ExcelJS.CellValue);
    if ('error' in value) return '';
  }
  return String(value);
}

async function* readXlsx(path: string, options: TableOptions): AsyncGenerator<TableRow> {
  const file = basename(path);
  const wanted = options.sheetIndex ?? 0;
  let yielded = false;
  try {
    for await (const row of streamXlsxSheet(path, wanted, options.headerRow ?? 1, options.columns)) {
      yielded = true;
      yield row;
    }
    return;
  } catch (e) {
    if (e instanceof IngestError) throw e;
    // exceljs's streaming reader can lose xl/workbook.xml when it is the last zip entry (a race on
    // Node >= 18, exceljs#3064) and then fails before its first row. Such files are read whole.
    if (yielded || !(e instanceof TypeError)) throw new IngestError({ file }, `cannot read as .xlsx: ${errorText(e)}`);
  }
  yield* readXlsxWhole(path, wanted, options.headerRow ?? 1, options.columns);
}

async function* streamXlsxSheet(path: string, wanted: number, headerRow: number, columns: readonly string[] | undefined): AsyncGenerator<TableRow> {
  const file = basename(path);
  const reader = new ExcelJS.stream.xlsx.WorkbookReader(path, { sharedStrings: 'cache', hyperlinks: 'ignore', styles: 'ignore', worksheets: 'emit', entries: 'ignore' });
  let index = 0;
  for await (const sheet of reader) {
    if (index++ !== wanted) {
      // A worksheet stored ahead of the shared strings is spooled to a temporary file that exceljs
      // deletes when the next sheet is asked for; read it to the end first or its pending open fails.
      for await (const row of sheet as AsyncIterable<ExcelJS.Row>) void row;
      continue;
    }
    yield* sheetRows(file, sheet as AsyncIterable<ExcelJS.Row>, headerRow, columns);
    return;
  }
  throw new IngestError({ file }, `has no worksheet ${wanted}`);
}

async function* readXlsxWhole(path: string, wanted: number, headerRow: number, columns: readonly string[] | undefined): AsyncGenerator<TableRow> {
  const file = basename(path);
  const workbook = new ExcelJS.Workbook();
  try {
    await workbook.xlsx.readFile(path);
  } catch (e) {
    throw new IngestError({ file }, `cannot read as .xlsx: ${errorText(e)}`);
  }
  const sheet = workbook.worksheets[wanted];
  if (!sheet) throw new IngestError({ file }, `has no worksheet ${wanted}`);
  const rows: ExcelJS.Row[] = [];
  sheet.eachRow((row) => rows.push(row));
  yield* sheetRows(file, rows, headerRow, columns);
}

/** Records of one worksheet keyed by its header row; blank rows are left out. */
async function* sheetRows(file: string, rows: AsyncIterable<ExcelJS.Row> | Iterable<ExcelJS.Row>, headerRow: number, columns: readonly string[] | undefined): AsyncGenerator<TableRow> {
  let header: string[] | undefined;
  let count = 0;
  for await (const row of rows) {
    const cells = (row.values as ExcelJS.CellValue[]).slice(1).map(cellText);
    if (row.number < headerRow) continue;
    if (row.number === headerRow) {
      header = headerNames(cells);
      checkColumns(file, headerRow, header, columns);
      continue;
    }
    if (!header) continue;
    if (cells.every((c) => c.trim() === '')) continue;
    const values: Record<string, string> = {};
    header.forEach((h, i) => (values[h] = cells[i] ?? ''));
    count++;
    yield { line: row.number, values };
  }
  if (!header) throw new IngestError({ file, line: headerRow }, 'no header row');
  checkRows(file, header, count, columns);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
