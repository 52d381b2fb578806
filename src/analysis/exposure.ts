/**
 * AI exposure: a shock along a built-in AI direction, and its comparison with an outside score
 * file (e.g. Felten, Raj & Seamans' AIOE by SOC 2010 occupation, or AIIE by 4-digit NAICS) after
 * mapping the file's codes onto the space's entities with the bundled crosswalks. The outside
 * scores are only compared with, never used to shape the direction.
 */
import { join } from 'node:path';

import { BUNDLED_DATA_DIR, CROSSWALKS_DIR } from '../data/bundled.js';
import { soc2010To2018, socToOnet } from '../data/crosswalks.js';
import { IngestReport } from '../data/report.js';
import { readTable } from '../data/table.js';
import type { EntityType } from '../store/index.js';
import type { LaborSpace } from '../space.js';
import { SpaceError } from '../errors.js';
import { shock, shockAlong, type ShockResult } from './analyses.js';
import { correlate, type Correlation } from './correlation.js';

/**
 * The AI direction built from the space's own entities (the default): the mean of these ESCO
 * skills, one per core AI capability (learning from data, reasoning, deep and neural models,
 * language, vision, speech, mining data), minus the mean of every ESCO skill, so that what all
 * skills share (being a skill description) cancels and what sets AI skills apart remains. The list
 * is a definition written from ESCO's titles, never fitted to an exposure score.
 */
export const AI_DIRECTION_SKILLS: readonly { ref: string; title: string }[] = [
  { ref: 'skill:esco:3a2d5b45-56e4-4f5a-a55a-4a4a65afdc43', title: 'machine learning' },
  { ref: 'skill:esco:e465a154-93f7-4973-9ce1-31659fe16dd2', title: 'principles of artificial intelligence' },
  { ref: 'skill:esco:ecc4552a-92c5-4222-b18d-faf5ac841080', title: 'deep learning' },
  { ref: 'skill:esco:5608d5a0-6d5e-43b7-be37-616501729bb4', title: 'artificial neural networks' },
  { ref: 'skill:esco:fff0e2cd-d0bd-4b02-9daf-158b79d9688a', title: 'natural language processing' },
  { ref: 'skill:esco:7b0d5000-00da-4864-b776-6de49a87a669', title: 'computer vision' },
  { ref: 'skill:esco:2af29864-c941-40a5-ae7b-2b6c4b92c0d7', title: 'speech recognition' },
  { ref: 'skill:esco:25f0ea33-b4a2-4f31-b7b4-7d20e827b180', title: 'data mining' },
];

/** How the AI direction is built: from ESCO skill entities (default) or from descriptions embedded as text. */
export type AiConstruction = 'skills' | 'texts';

/**
 * The older construction, kept for comparison: the sum of these descriptions of what AI systems do
 * (general capabilities and the main application areas), each embedded by the space's encoder.
 */
export const AI_DIRECTION_TEXTS = [
  'artificial intelligence',
  'machine learning',
  'deep learning and neural networks',
  'computer vision and image recognition',
  'natural language processing and language models',
  'speech recognition',
  'machine translation',
  'predictive analytics and data mining',
  'robotic process automation',
];

export const AI_DIRECTION = AI_DIRECTION_TEXTS.map((t) => `"${t}"`).join(' + ');

/** mean(AI_DIRECTION_SKILLS) - mean(every ESCO skill) in the space's vectors. */
export function aiSkillDirection(space: LaborSpace): Float32Array {
  const skills = space.index.vectors('skill');
  if (!skills) throw new SpaceError('NOT_BUILT', 'the space has no skills to build the AI direction from');
  const dim = space.dim;
  const chosen = new Set(AI_DIRECTION_SKILLS.map((s) => s.ref));
  const ai = new Float64Array(dim), all = new Float64Array(dim);
  let nAi = 0, nAll = 0;
  skills.refs.forEach((ref, i) => {
    if (!ref.startsWith('skill:esco:')) return;
    const row = skills.matrix.subarray(i * dim, (i + 1) * dim);
    nAll++;
    for (let j = 0; j < dim; j++) all[j] += row[j];
    if (!chosen.has(ref)) return;
    nAi++;
    for (let j = 0; j < dim; j++) ai[j] += row[j];
  });
  if (nAi !== chosen.size) throw new SpaceError('NOT_BUILT', `the space holds ${nAi} of the ${chosen.size} ESCO skills the AI direction is built from: rebuild it from the bundled data, or use --construction texts`);
  return Float32Array.from(ai, (v, j) => v / nAi - all[j] / nAll);
}

export async function aiExposure(space: LaborSpace, options: { types?: readonly EntityType[]; top?: number; construction?: AiConstruction } = {}): Promise<ShockResult> {
  const shockOptions = { types: options.types ?? ['occupation', 'industry'], top: options.top };
  if ((options.construction ?? 'skills') === 'texts') return shock(space, AI_DIRECTION, shockOptions);
  if (options.construction !== undefined && options.construction !== 'skills') throw new SpaceError('BAD_OPTION', `construction must be skills or texts, got ${options.construction}`);
  return shockAlong(space, `mean of ${AI_DIRECTION_SKILLS.length} ESCO AI skills - mean of all ESCO skills`, aiSkillDirection(space), shockOptions);
}

export interface CompareOptions {
  /** Column holding the codes: SOC (e.g. 15-1132 or 15-1132.00) or NAICS (2 to 6 digits). */
  key: string;
  /** Column holding the scores. */
  value: string;
  /** Vintage of SOC codes (default 2010, as in Felten et al.). */
  socVintage?: 2010 | 2018;
  /** Worksheet of an .xlsx file, in file order (default 0). */
  sheet?: number;
  /** Where the crosswalks are (default: the bundled data). */
  dataDir?: string;
}

export interface ComparisonRow {
  code: string;
  score: number;
  refs: string[];
  direct: number;
  rippled?: number;
}

export interface ExposureComparison {
  file: string;
  kind: 'occupation' | 'industry';
  rows: number;
  matched: number;
  unmatched: string[];
  /** Each matched code's score against the mean exposure of the entities it maps to. */
  direct: Correlation;
  /** The same with rippled exposure, over the codes whose entities have one. */
  rippled: Correlation;
  matches: ComparisonRow[];
}

/** Correlation of a score file with the exposures of a shock result (which must cover its type). */
export async function compareExposure(space: LaborSpace, exposure: ShockResult, file: string, options: CompareOptions): Promise<ExposureComparison> {
  const rows: { code: string; score: number }[] = [];
  for await (const { values, line } of readTable(file, { sheetIndex: options.sheet })) {
    if (!(options.key in values)) throw new SpaceError('BAD_OPTION', `${file}: no column "${options.key}" (columns: ${Object.keys(values).join(', ')})`);
    if (!(options.value in values)) throw new SpaceError('BAD_OPTION', `${file}: no column "${options.value}" (columns: ${Object.keys(values).join(', ')})`);
    const code = values[options.key].trim();
    const score = Number(values[options.value]);
    if (!code || values[options.value].trim() === '' || !Number.isFinite(score)) throw new SpaceError('BAD_QUERY', `${file}:${line}: "${values[options.value]}" is not a score for "${code}"`);
    rows.push({ code, score });
  }
  if (!rows.length) throw new SpaceError('BAD_QUERY', `${file}: no rows to compare`);
  const kind = /^\d\d-\d{4}/.test(rows[0].code) ? 'occupation' : /^\d{2,6}$/.test(rows[0].code) ? 'industry' : undefined;
  if (!kind) throw new SpaceError('BAD_QUERY', `${file}: "${rows[0].code}" is neither a SOC code (15-1132) nor a NAICS code`);
  const byRef = new Map(exposure.all.map((h) => [h.ref, h]));
  if (![...byRef.keys()].some((r) => r.startsWith(`${kind}:`))) throw new SpaceError('BAD_OPTION', `the exposure has no ${kind} entities to compare with`);
  const refsOf = kind === 'occupation' ? await socMapper(space, options) : (code: string) => naicsRefs(byRef, code);
  const matches: ComparisonRow[] = [];
  const unmatched: string[] = [];
  for (const { code, score } of rows) {
    const hits = refsOf(code).map((r) => byRef.get(r)).filter((h) => h !== undefined);
    if (!hits.length) {
      unmatched.push(code);
      continue;
    }
    const rippled = hits.filter((h) => h.rippled !== undefined);
    matches.push({
      code,
      score,
      refs: hits.map((h) => h.ref),
      direct: hits.reduce((s, h) => s + h.direct, 0) / hits.length,
      ...(rippled.length ? { rippled: rippled.reduce((s, h) => s + h.rippled!, 0) / rippled.length } : {}),
    });
  }
  const withRipple = matches.filter((m) => m.rippled !== undefined);
  return {
    file,
    kind,
    rows: rows.length,
    matched: matches.length,
    unmatched,
    direct: correlate(matches.map((m) => m.score), matches.map((m) => m.direct)),
    rippled: correlate(withRipple.map((m) => m.score), withRipple.map((m) => m.rippled!)),
    matches,
  };
}

/** SOC code (2010 or 2018 vintage, six digits, optional .00) -> the O*NET occupations it covers. */
async function socMapper(space: LaborSpace, options: CompareOptions): Promise<(code: string) => string[]> {
  const dir = join(options.dataDir ?? BUNDLED_DATA_DIR, CROSSWALKS_DIR);
  const report = new IngestReport();
  const onetCodes = space.store.entities({ type: 'occupation', source: 'onet' }).map((e) => e.code);
  const bySoc = await socToOnet({ dir, report, onetCodes });
  const to2018 = (options.socVintage ?? 2010) === 2010 ? await soc2010To2018({ dir, report }) : undefined;
  return (code) => {
    const soc = code.slice(0, 7);
    const socs2018 = to2018 ? to2018.get(soc) ?? [] : [soc];
    return [...new Set(socs2018.flatMap((s) => bySoc.get(s) ?? []))].map((c) => `occupation:onet:${c}`);
  };
}

/**
 * NAICS code -> industry entity: the code itself, or for an OES aggregate written with a trailing
 * zero (4450, 5320) the code without it.
 */
function naicsRefs(byRef: ReadonlyMap<string, unknown>, code: string): string[] {
  for (let c = code; c.length >= 2; c = c.endsWith('0') ? c.slice(0, -1) : '') if (byRef.has(`industry:naics:${c}`)) return [`industry:naics:${c}`];
  return [];
}
