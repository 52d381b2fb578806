/**
 * Bulk scoring: a CSV (or TSV, .gz), JSONL or Parquet file of texts (job postings, company descriptions)
 * read as a stream, embedded in batches, and written row by row with the nearest occupation and
 * industry, the top skills and the position on chosen axes. Memory stays at one batch whatever the
 * file's size; malformed rows are reported and skipped (or fail the run, as asked).
 */
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';

import { stringify } from 'csv-stringify/sync';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { ByteWriter, ParquetWriter, schemaFromColumnData } from 'hyparquet-writer';

import { IngestError } from '../data/errors.js';
import { IngestReport } from '../data/report.js';
import { openText, readTable } from '../data/table.js';
import { projectAsync } from '../native.js';
import type { LaborSpace } from '../space.js';
import { SpaceError } from '../errors.js';
import { sameFile, writeStreamAtomic } from '../util/output-file.js';
import { axisPoleMeans } from './analyses.js';

export interface ScoreOptions {
  /** Column (CSV) or key (JSONL) holding the text. */
  textColumn: string;
  /** Column copied to the output to identify each row (default: the input's line number). */
  idColumn?: string;
  /** Skills listed per row (default 5). */
  skills?: number;
  /** Axes to place each text on, by name, with their poles. */
  axes?: Record<string, { from: readonly string[]; to: readonly string[] }>;
  /** Texts embedded together (default 256). */
  batchSize?: number;
  onError?: 'skip' | 'fail';
  onProgress?: (rows: number, rowsPerSecond: number) => void;
}

export interface ScoredRow {
  id: string;
  occupation: { ref: string; title: string; score: number } | null;
  industry: { ref: string; title: string; score: number } | null;
  skills: { ref: string; title: string; score: number }[];
  axes: Record<string, number>;
}

export interface ScoreSummary {
  rows: number;
  skipped: { line?: number; reason: string }[];
  seconds: number;
  rowsPerSecond: number;
}

/** One row to score: its line (row number in Parquet), text and id. */
export interface InputRow {
  line: number;
  text: string;
  id: string;
}

/** Output formats by file extension. */
const OUTPUT_FORMATS = { csv: /\.csv$/i, jsonl: /\.jsonl$/i, parquet: /\.parquet$/i } as const;
export type OutputFormat = keyof typeof OUTPUT_FORMATS;

/**
 * The rows of text worth scoring, from a CSV/TSV (via readTable), JSONL or Parquet file, with their
 * line numbers; malformed rows and empty texts are reported in `report` and skipped (or fail the
 * run, with --on-error fail). The single process and the queue's coordinator both read through it.
 */
export async function* inputRows(path: string, options: Pick<ScoreOptions, 'textColumn' | 'idColumn' | 'onError'>, report: IngestReport): AsyncGenerator<InputRow> {
  const fail = options.onError === 'fail';
  for await (const row of parsedRows(path, options, report)) {
    if (row.text) yield row;
    else if (fail) throw new SpaceError('BAD_QUERY', `${basename(path)}:${row.line}: the text is empty`);
    else report.skip({ file: basename(path), line: row.line, column: options.textColumn }, 'empty text');
  }
}

async function* parsedRows(path: string, options: Pick<ScoreOptions, 'textColumn' | 'idColumn' | 'onError'>, report: IngestReport): AsyncGenerator<InputRow> {
  const fail = options.onError === 'fail';
  const pick = (values: Record<string, unknown>, line: number) => {
    const text = String(values[options.textColumn] ?? '').trim();
    const id = options.idColumn ? String(values[options.idColumn] ?? '') : String(line);
    return { line, text, id };
  };
  if (/\.parquet$/i.test(path)) {
    // A row group at a time: Parquet has no lines, so a row's "line" is its row number (1-based).
    const file = await asyncBufferFromFile(path);
    const metadata = await parquetMetadataAsync(file);
    const names = parquetSchema(metadata).children.map((c) => c.element.name);
    for (const column of [options.textColumn, options.idColumn].filter((c) => c !== undefined))
      if (!names.includes(column)) throw new SpaceError('BAD_OPTION', `${basename(path)}: no column "${column}" (found: ${names.join(', ')})`);
    const columns = [...new Set([options.textColumn, ...(options.idColumn ? [options.idColumn] : [])])];
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const rowEnd = rowStart + Number(group.num_rows);
      const rows = await parquetReadObjects({ file, metadata, columns, rowStart, rowEnd });
      for (const [i, values] of rows.entries()) yield pick(values, rowStart + i + 1);
      rowStart = rowEnd;
    }
    return;
  }
  if (/\.jsonl$/i.test(path)) {
    const lines = createInterface({ input: openText(path), crlfDelay: Infinity });
    // Each line stands alone: a bad one is skipped (reported) or fails the run.
    const bad = (line: number, reason: string) => {
      if (fail) throw new SpaceError('BAD_QUERY', `${basename(path)}:${line}: ${reason}`);
      report.skip({ file: basename(path), line }, reason);
    };
    let line = 0;
    let filled = 0;
    for await (const raw of lines) {
      line++;
      if (!raw.trim()) continue;
      filled++;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (e) {
        bad(line, `not valid JSON (${(e as Error).message})`);
        continue;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(line, 'not a JSON object');
      else if (!(options.textColumn in value)) bad(line, `no key "${options.textColumn}" (found: ${Object.keys(value).join(', ')})`);
      else yield pick(value as Record<string, unknown>, line);
    }
    if (!filled) throw new IngestError({ file: basename(path) }, 'is empty (expected one JSON object per line)');
    return;
  }
  // The text and id columns are required: a file without them, or without a row, fails naming the file.
  const columns = [options.textColumn, ...(options.idColumn ? [options.idColumn] : [])];
  for await (const { line, values } of readTable(path, { report, onError: options.onError, columns })) yield pick(values, line);
}

/** Consecutive groups of `size` items (the last one shorter). */
export async function* chunksOf<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length >= size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length) yield chunk;
}

const CSV_COLUMNS = (skills: number, axes: string[]) => [
  'id',
  'occupation_ref',
  'occupation_title',
  'occupation_score',
  'industry_ref',
  'industry_title',
  'industry_score',
  ...Array.from({ length: skills }, (_, i) => [`skill_${i + 1}_ref`, `skill_${i + 1}_title`, `skill_${i + 1}_score`]).flat(),
  ...axes.map((a) => `axis_${a}`),
];

/** Each axis's direction mean(to) - mean(from), one row per axis in the record's order. */
export async function axisDirections(space: LaborSpace, axes: Record<string, { from: readonly string[]; to: readonly string[] }>, signal?: AbortSignal): Promise<Float32Array> {
  const names = Object.keys(axes);
  const directions = new Float32Array(names.length * space.dim);
  for (const [i, name] of names.entries()) {
    const { from, to } = await axisPoleMeans(space, axes[name].from, axes[name].to, signal);
    directions.set(to.map((v, j) => v - from[j]), i * space.dim);
  }
  return directions;
}

/**
 * Nearest occupation and industry, top skills and axis positions of each text (ids left empty).
 * `directions` may be given when the same axes score many batches. Every text's searches run as
 * one batched scan per type, off the event loop; an aborted `signal` stops between the steps.
 */
export async function scoreTexts(
  space: LaborSpace,
  texts: readonly string[],
  options: { skills?: number; axes?: Record<string, { from: readonly string[]; to: readonly string[] }>; signal?: AbortSignal },
  directions?: Float32Array,
): Promise<ScoredRow[]> {
  const { signal } = options;
  const skills = options.skills ?? 5;
  const axisNames = Object.keys(options.axes ?? {});
  const dirs = directions ?? (await axisDirections(space, options.axes ?? {}, signal));
  const vectors = await space.embed(texts, signal); // unit rows
  const nearest = async (type: 'occupation' | 'industry' | 'skill', k: number) => {
    signal?.throwIfAborted();
    const set = space.index.vectors(type);
    if (!set || !k) return texts.map(() => []);
    const found = await space.index.searchManyAsync(type, vectors, k);
    return found.map((hits) => hits.rows.map((row, i) => ({ ref: set.refs[row], title: space.title(set.refs[row]), score: hits.scores[i] })));
  };
  const occupations = await nearest('occupation', 1), industries = await nearest('industry', 1), skillHits = await nearest('skill', skills);
  const positions = axisNames.length ? await projectAsync(vectors, dirs, space.dim) : new Float32Array(0);
  return texts.map((_, i) => ({
    id: '',
    occupation: occupations[i][0] ?? null,
    industry: industries[i][0] ?? null,
    skills: skillHits[i],
    axes: Object.fromEntries(axisNames.map((name, a) => [name, positions[i * axisNames.length + a]])),
  }));
}

/** How rows are scored: the same for the single process and a queue's workers. */
export interface ChunkOptions {
  skills: number;
  axes: Record<string, { from: readonly string[]; to: readonly string[] }>;
  batchSize: number;
}

/**
 * Scores rows in batches of `batchSize` (so that the single process and a queue worker given the
 * same rows embed the same batches), each result carrying its row's id.
 */
export async function scoreRows(space: LaborSpace, rows: readonly InputRow[], options: ChunkOptions, directions: Float32Array): Promise<ScoredRow[]> {
  const scored: ScoredRow[] = [];
  for (let i = 0; i < rows.length; i += options.batchSize) {
    const batch = rows.slice(i, i + options.batchSize);
    const found = await scoreTexts(space, batch.map((b) => b.text), { skills: options.skills, axes: options.axes }, directions);
    for (const [j, row] of found.entries()) scored.push({ ...row, id: batch[j].id });
  }
  return scored;
}

/** The output's format, checked: by its extension, never the input itself. */
export function outputFormat(input: string, output: string): OutputFormat {
  const format = (Object.keys(OUTPUT_FORMATS) as OutputFormat[]).find((f) => OUTPUT_FORMATS[f].test(output));
  if (!format) throw new SpaceError('BAD_OPTION', `${output}: the output must end in .csv, .jsonl or .parquet`);
  if (sameFile(input, output)) throw new SpaceError('BAD_OPTION', `${output} is the input file: write the scores to another file`);
  return format;
}

/** Options of a scoring run with their defaults, checked. */
export function chunkOptions(options: Pick<ScoreOptions, 'skills' | 'axes' | 'batchSize'>): ChunkOptions {
  const skills = options.skills ?? 5;
  if (!Number.isInteger(skills) || skills < 0 || skills > 100) throw new SpaceError('BAD_OPTION', `skills must be an integer from 0 to 100, got ${skills}`);
  return { skills, axes: options.axes ?? {}, batchSize: options.batchSize ?? 256 };
}

/** Rows of a Parquet output buffered before they are written as one row group. */
const PARQUET_ROW_GROUP = 10_000;

/**
 * Scored rows as the output holds them: CSV lines or JSONL lines as text, or (Parquet) each row's
 * fields, which the writer gathers into row groups. A queue's worker formats its chunk so, and the
 * coordinator writes what it gets without parsing rows and writing them again.
 */
export type FormattedRows = { text: string; count: number } | { fields: (string | number | null)[][] };

export const formattedCount = (rows: FormattedRows) => ('text' in rows ? rows.count : rows.fields.length);

/** Formats scored rows for an output of `format`, CSV's header aside. */
export function formatRows(format: OutputFormat, options: ChunkOptions, rows: readonly ScoredRow[]): FormattedRows {
  const axisNames = Object.keys(options.axes);
  const fields = (row: ScoredRow): (string | number | null)[] => {
    const skills = Array.from({ length: options.skills }, (_, s) => row.skills[s]).flatMap((h) => (h ? [h.ref, h.title, h.score] : [null, null, null]));
    const { occupation: o, industry: n } = row;
    return [row.id, o?.ref ?? null, o?.title ?? null, o?.score ?? null, n?.ref ?? null, n?.title ?? null, n?.score ?? null, ...skills, ...axisNames.map((a) => row.axes[a])];
  };
  if (format === 'parquet') return { fields: rows.map(fields) };
  if (format === 'jsonl') return { text: rows.map((r) => `${JSON.stringify(r)}\n`).join(''), count: rows.length };
  return { text: rows.length ? stringify(rows.map((r) => fields(r).map((v) => v ?? ''))) : '', count: rows.length };
}

/**
 * Writes formatted rows to `output` in `format` as `produce` hands them over, in its order; the
 * file appears only when `produce` has finished (written beside it, then renamed). Memory stays at
 * one handful of rows (CSV, JSONL) or one row group (Parquet).
 */
export async function writeScores<T>(output: string, format: OutputFormat, options: ChunkOptions, produce: (write: (rows: FormattedRows) => Promise<void>) => Promise<T>): Promise<T> {
  const columns = CSV_COLUMNS(options.skills, Object.keys(options.axes));
  return writeStreamAtomic(output, async (out) => {
    const put = async (chunk: string | Uint8Array) => {
      if (!out.write(chunk)) await once(out, 'drain');
    };
    if (format !== 'parquet') {
      if (format === 'csv') await put(stringify([columns]));
      return produce(async (rows) => {
        if ('fields' in rows) throw new Error(`rows formatted for Parquet given to a ${format} output`);
        if (rows.text) await put(rows.text);
      });
    }
    // Scores as doubles, the rest as strings; a missing hit is null.
    const types = columns.map((c) => (/_score$|^axis_/.test(c) ? 'DOUBLE' : 'STRING') as 'DOUBLE' | 'STRING');
    const bytes = new ByteWriter();
    let pending: Promise<void> = Promise.resolve();
    // Bytes go to the stream after each row group (ParquetWriter awaits flush), not at the end.
    (bytes as ByteWriter & { flush(): Promise<void> }).flush = () => {
      const chunk = bytes.getBytes().slice();
      bytes.index = 0;
      pending = pending.then(() => put(chunk));
      return pending;
    };
    const schema = schemaFromColumnData({ columnData: columns.map((name, i) => ({ name, data: [], type: types[i] })) });
    const writer = new ParquetWriter({ writer: bytes, schema });
    let buffered: (string | number | null)[][] = [];
    const group = async () => {
      if (!buffered.length) return;
      const rows = buffered;
      buffered = [];
      await writer.write({ columnData: columns.map((name, c) => ({ name, data: rows.map((r) => r[c]) })), rowGroupSize: rows.length });
    };
    const result = await produce(async (rows) => {
      if (!('fields' in rows)) throw new Error('rows formatted as text given to a Parquet output');
      for (const row of rows.fields) buffered.push(row);
      if (buffered.length >= PARQUET_ROW_GROUP) await group();
    });
    await group();
    await writer.finish();
    await (bytes as ByteWriter & { flush(): Promise<void> }).flush();
    return result;
  });
}

/** The summary of a run from its rows, its report and its start. */
export function scoreSummary(rows: number, report: IngestReport, started: number): ScoreSummary {
  const seconds = (Date.now() - started) / 1000;
  const skipped = report.skipped.map((s) => ({ line: s.line, reason: s.reason })).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { rows, skipped, seconds, rowsPerSecond: rows / Math.max(0.001, seconds) };
}

/**
 * Scores every text of `input` into `output` (.csv, .jsonl or .parquet, by its extension). The
 * output appears only when every row has been scored (written beside it, then renamed).
 */
export async function scoreFile(space: LaborSpace, input: string, output: string, options: ScoreOptions): Promise<ScoreSummary> {
  const format = outputFormat(input, output);
  const chunk = chunkOptions(options);
  const directions = await axisDirections(space, chunk.axes);
  const report = new IngestReport();
  return writeScores(output, format, chunk, async (write) => {
    const started = Date.now();
    let rows = 0;
    for await (const batch of chunksOf(inputRows(input, options, report), chunk.batchSize)) {
      await write(formatRows(format, chunk, await scoreRows(space, batch, chunk, directions)));
      rows += batch.length;
      options.onProgress?.(rows, rows / Math.max(0.001, (Date.now() - started) / 1000));
    }
    return scoreSummary(rows, report, started);
  });
}
