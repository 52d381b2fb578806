/**
 * Ingest: runs every loader over a data folder (the bundled one by default), checks every
 * relation endpoint, and writes entities and relations to the store in one transaction, so a
 * load that fails anywhere leaves the store as it was. Re-running it is idempotent.
 */
import { join } from 'node:path';

import type { EntityInput, RelationInput, Store, UpsertCounts } from '../store/index.js';
import { formatRef } from '../store/index.js';
import { BUNDLED_DATA_DIR, CROSSWALKS_DIR, ESCO_DIR, FIRMS_DIR, NAICS_2017_DIR, ONET_DIR } from './bundled.js';
import { loadEscoOnetCrosswalk, loadIscoOnetCrosswalk, loadOewsEmployment, naics2002To2017, socToOnet } from './crosswalks.js';
import { loadEsco } from './esco.js';
import { type FirmColumns, loadFirmFile, loadSp500Firms, loadWikipediaFirms, sicToNaics2017 } from './firms.js';
import { IndustryMatcher, type IndustryPhrase } from './industry-matcher.js';
import { loadNaics } from './naics.js';
import { loadOnet } from './onet.js';
import { IngestReport } from './report.js';
import type { Loaded } from './types.js';

export interface FirmFile {
  path: string;
  columns: FirmColumns;
  /** Entity source, e.g. 'crunchbase': refs are firm:<source>:<id>. */
  source: string;
}

export interface IngestOptions {
  /** Folder in the raw data layout (default: the bundled data). */
  dataDir?: string;
  /** Malformed rows: report and skip (default) or fail the whole load. */
  onError?: 'skip' | 'fail';
  /** Extra firm files, e.g. a Crunchbase export. */
  firmFiles?: FirmFile[];
  /** Also load NAICS 2022 (Census code list and descriptions) from this folder, as `industry:naics2022:*`. */
  naics2022Dir?: string;
  /** Called as each step starts. */
  onStep?: (step: string, index: number, total: number) => void;
}

export interface IngestSummary {
  dataDir: string;
  written: UpsertCounts;
  relationsWritten: number;
  entities: { type: string; source: string; count: number }[];
  relations: { kind: string; count: number }[];
  /** Skipped rows grouped by file and reason, the most frequent first, at most MAX_SKIP_GROUPS groups. */
  skipped: { file: string; reason: string; count: number; first: string }[];
  /** The groups past MAX_SKIP_GROUPS, counted. */
  skippedOmitted?: { groups: number; rows: number };
  unknown: { kind: string; count: number; examples: string[] }[];
  duplicates: number;
  notes: string[];
  seconds: number;
}

/** Groups of skipped rows a summary lists: a broken file must not make a summary of megabytes. */
export const MAX_SKIP_GROUPS = 50;

const STEPS = ['NAICS 2017', 'O*NET 29.2', 'ESCO v1.1.1', 'firms', 'crosswalks', 'checking relations', 'writing the store'] as const;

export async function ingest(store: Store, options: IngestOptions = {}): Promise<IngestSummary> {
  const started = Date.now();
  const dataDir = options.dataDir ?? BUNDLED_DATA_DIR;
  const report = new IngestReport();
  const common = { report, onError: options.onError };
  let stepIndex = 0;
  const step = (name: (typeof STEPS)[number]) => options.onStep?.(name, stepIndex++, STEPS.length);
  const parts: Loaded[] = [];

  step('NAICS 2017');
  const naics = await loadNaics({ dir: join(dataDir, NAICS_2017_DIR), edition: 2017, ...common });
  parts.push(naics);
  if (options.naics2022Dir) parts.push(await loadNaics({ dir: options.naics2022Dir, edition: 2022, ...common }));
  step('O*NET 29.2');
  const onet = await loadOnet({ dir: join(dataDir, ONET_DIR), ...common });
  parts.push(onet);
  step('ESCO v1.1.1');
  parts.push(await loadEsco({ dir: join(dataDir, ESCO_DIR), ...common }));

  step('firms');
  const crosswalk = { dir: join(dataDir, CROSSWALKS_DIR), ...common, onetCodes: onet.entities.filter((e) => e.type === 'occupation').map((e) => e.code) };
  const ctx = { ...common, matcher: new IndustryMatcher(industryPhrases(naics.entities)) };
  parts.push(await loadWikipediaFirms(join(dataDir, FIRMS_DIR), ctx));
  const sicMap = await sicToNaics2017(join(dataDir, CROSSWALKS_DIR), await naics2002To2017(crosswalk), ctx);
  parts.push(await loadSp500Firms(join(dataDir, FIRMS_DIR), sicMap, ctx));
  for (const f of options.firmFiles ?? []) parts.push(await loadFirmFile(f.path, f.columns, f.source, ctx));

  step('crosswalks');
  const bySoc = await socToOnet(crosswalk);
  parts.push({ entities: [], relations: await loadEscoOnetCrosswalk(crosswalk) });
  parts.push({ entities: [], relations: await loadIscoOnetCrosswalk(crosswalk, bySoc) });
  parts.push({ entities: [], relations: await loadOewsEmployment(crosswalk, bySoc) });

  step('checking relations');
  const entities = new Map<string, EntityInput>();
  let duplicates = 0;
  for (const part of parts)
    for (const e of part.entities) {
      const ref = formatRef(e);
      if (entities.has(ref)) duplicates++;
      else entities.set(ref, e);
    }
  if (duplicates) report.note(`${duplicates} entities appeared twice; the first was kept`);
  const relations = checkRelations(parts.flatMap((p) => p.relations), entities, report);

  step('writing the store');
  let written: UpsertCounts = { inserted: 0, updated: 0, unchanged: 0 };
  store.transaction(() => {
    written = store.upsertEntities([...entities.values()]);
    store.addRelations(relations);
  });
  const skipped = report.skippedSummary();
  const omitted = skipped.slice(MAX_SKIP_GROUPS);
  return {
    dataDir,
    written,
    relationsWritten: relations.length,
    entities: store.entityCounts(),
    relations: store.relationCounts(),
    skipped: skipped.slice(0, MAX_SKIP_GROUPS),
    ...(omitted.length ? { skippedOmitted: { groups: omitted.length, rows: omitted.reduce((n, g) => n + g.count, 0) } } : {}),
    unknown: [...report.unknown].map(([kind, v]) => ({ kind, ...v })),
    duplicates,
    notes: report.notes,
    seconds: (Date.now() - started) / 1000,
  };
}

/** NAICS titles (4-6 digits) and index phrases (6 digits): what free-text industries match against. */
function industryPhrases(industries: EntityInput[]): IndustryPhrase[] {
  const phrases: IndustryPhrase[] = [];
  for (const e of industries) {
    if (e.code.length >= 4 && !e.code.includes('-')) phrases.push({ code: e.code, text: e.title, via: 'title' });
    for (const p of (e.extra?.index as string[] | undefined) ?? []) phrases.push({ code: e.code, text: p, via: 'index' });
  }
  return phrases;
}

/**
 * Keeps relations whose both ends exist (the others are counted per kind in the report, never
 * dropped silently) and merges repeats of (source, target, kind), keeping the largest weight.
 */
function checkRelations(all: RelationInput[], entities: Map<string, EntityInput>, report: IngestReport): RelationInput[] {
  const kept = new Map<string, RelationInput>();
  for (const r of all) {
    const missing = !entities.has(r.source) ? r.source : !entities.has(r.target) ? r.target : undefined;
    if (missing) {
      report.unknownEndpoint(r.kind, missing);
      continue;
    }
    const key = `${r.source}\u0000${r.target}\u0000${r.kind}`;
    const prior = kept.get(key);
    if (!prior || (r.weight ?? 1) > (prior.weight ?? 1)) kept.set(key, r);
  }
  return [...kept.values()];
}
