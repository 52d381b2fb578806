/**
 * Bulk scoring: a CSV (or TSV, .gz) or JSONL file of texts (job postings, company descriptions)
 * read as a stream, embedded in batches, and written row by row with the nearest occupation and
 * industry, the top skills and the position on chosen axes. Memory stays at one batch whatever the
 * file's size; malformed rows are reported and skipped (or fail the run, as asked).
 */
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';

import { stringify } from 'csv-stringify/sync';

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

/** Rows of text from a CSV/TSV (via readTable) or a JSONL file, with their line numbers. */
async function* textRows(path: string, options: ScoreOptions, report: IngestReport): AsyncGenerator<{ line: number; text: string; id: string }> {
  const fail = options.onError === 'fail';
  const pick = (values: Record<string, unknown>, line: number) => {
    const text = String(values[options.textColumn] ?? '').trim();
    const id = options.idColumn ? String(values[options.idColumn] ?? '') : String(line);
    return { line, text, id };
  };
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

/**
 * Scores every text of `input` into `output` (.csv or .jsonl, by its extension). The output appears
 * only when every row has been scored (written beside it, then renamed).
 */
export async function scoreFile(space: LaborSpace, input: string, output: string, options: ScoreOptions): Promise<ScoreSummary> {
  const csv = /\.csv$/i.test(output);
  if (!csv && !/\.jsonl$/i.test(output)) throw new SpaceError('BAD_OPTION', `${output}: the output must end in .csv or .jsonl`);
  if (sameFile(input, output)) throw new SpaceError('BAD_OPTION', `${output} is the input file: write the scores to another file`);
  const skillsPerRow = options.skills ?? 5;
  if (!Number.isInteger(skillsPerRow) || skillsPerRow < 0 || skillsPerRow > 100) throw new SpaceError('BAD_OPTION', `skills must be an integer from 0 to 100, got ${skillsPerRow}`);
  const batchSize = options.batchSize ?? 256;
  const axisNames = Object.keys(options.axes ?? {});
  const directions = await axisDirections(space, options.axes ?? {});
  const report = new IngestReport();
  return writeStreamAtomic(output, async (out) => {
    const write = async (chunk: string) => {
      if (!out.write(chunk)) await once(out, 'drain');
    };
    if (csv) await write(stringify([CSV_COLUMNS(skillsPerRow, axisNames)]));
    const started = Date.now();
    let rows = 0;
    const flush = async (batch: { line: number; text: string; id: string }[]) => {
      if (!batch.length) return;
      const scored = await scoreTexts(space, batch.map((b) => b.text), { skills: skillsPerRow, axes: options.axes }, directions);
      const lines = scored.map((row, i) => {
        row.id = batch[i].id;
        if (!csv) return `${JSON.stringify(row)}\n`;
        const skills = Array.from({ length: skillsPerRow }, (_, s) => row.skills[s]).flatMap((h) => (h ? [h.ref, h.title, h.score] : ['', '', '']));
        const { occupation: o, industry: n } = row;
        return stringify([[row.id, o?.ref ?? '', o?.title ?? '', o?.score ?? '', n?.ref ?? '', n?.title ?? '', n?.score ?? '', ...skills, ...axisNames.map((a) => row.axes[a])]]);
      });
      await write(lines.join(''));
      rows += batch.length;
      options.onProgress?.(rows, rows / Math.max(0.001, (Date.now() - started) / 1000));
    };
    let batch: { line: number; text: string; id: string }[] = [];
    for await (const row of textRows(input, options, report)) {
      if (!row.text) {
        if (options.onError === 'fail') throw new SpaceError('BAD_QUERY', `${basename(input)}:${row.line}: the text is empty`);
        report.skip({ file: basename(input), line: row.line, column: options.textColumn }, 'empty text');
        continue;
      }
      batch.push(row);
      if (batch.length >= batchSize) {
        await flush(batch);
        batch = [];
      }
    }
    await flush(batch);
    const seconds = (Date.now() - started) / 1000;
    const skipped = report.skipped.map((s) => ({ line: s.line, reason: s.reason })).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    return { rows, skipped, seconds, rowsPerSecond: rows / Math.max(0.001, seconds) };
  });
}
