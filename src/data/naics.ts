/**
 * NAICS (U.S. Census Bureau), 2017 edition by default, 2022 also: every 2-6 digit code with its
 * title and description, the hierarchy, index entries (kept as aliases in `extra.index`) and
 * cross-references between industries.
 */
import { join } from 'node:path';

import type { EntityInput, RelationInput } from '../store/index.js';
import type { IngestReport } from './report.js';
import { findTable, readTable, requireTable } from './table.js';
import { cleanText, type Loaded, titledText } from './types.js';

export type NaicsEdition = 2017 | 2022;

export interface NaicsOptions {
  /** Folder with the Census files of the edition (e.g. data/naics/2017). */
  dir: string;
  edition?: NaicsEdition;
  report: IngestReport;
  onError?: 'skip' | 'fail';
}

/** Entity source of an edition: 'naics' for 2017 (the default space), 'naics2022' otherwise. */
export function naicsSource(edition: NaicsEdition): string {
  return edition === 2017 ? 'naics' : `naics${edition}`;
}

const SECTOR_RANGES: Record<string, string> = { '31': '31-33', '32': '31-33', '33': '31-33', '44': '44-45', '45': '44-45', '48': '48-49', '49': '48-49' };

/** The parent code of a NAICS code (sector ranges for 3-digit codes under 31-33, 44-45, 48-49). */
export function naicsParent(code: string): string | undefined {
  if (!/^\d{3,6}$/.test(code)) return undefined;
  const parent = code.slice(0, -1);
  return parent.length === 2 ? (SECTOR_RANGES[parent] ?? parent) : parent;
}

/** The sector (2-digit code or range) a code belongs to. */
export function naicsSector(code: string): string {
  const two = code.slice(0, 2);
  return /^\d{2}-\d{2}$/.test(code) ? code : (SECTOR_RANGES[two] ?? two);
}

/** Census titles carry a trailing "T" (the trilateral marker), sometimes followed by a space. */
export function stripTrilateral(title: string): string {
  return title.replace(/([a-z)\]])T\s*$/, '$1').trim();
}

const SEE_CHILD = /^See industry description for (\d{6})\.?$/i;
const CROSS_REF_CODE = /\b(?:U\.S\. Industry|Industry Group|Industry|Subsector|Sector)\s+(\d{2,6}(?:-\d{2})?)/g;

export async function loadNaics(options: NaicsOptions): Promise<Loaded> {
  const edition = options.edition ?? 2017;
  const source = naicsSource(edition);
  const { dir, report } = options;
  const read = { report, onError: options.onError };
  const ref = (code: string) => `industry:${source}:${code}`;

  const titles = new Map<string, string>();
  const codeColumn = `${edition} NAICS US Code`;
  const titleColumn = `${edition} NAICS US Title`;
  for await (const { values } of readTable(requireTable(join(dir, `2-6 digit_${edition}_Codes`)), { ...read, columns: [codeColumn, titleColumn] })) {
    const code = (values[codeColumn] ?? '').trim();
    const title = (values[titleColumn] ?? '').trim();
    if (code && title) titles.set(code, stripTrilateral(title));
  }

  const descriptions = new Map<string, string>();
  const descFile = requireTable(join(dir, `${edition}_NAICS_Descriptions`));
  for await (const { values, line } of readTable(descFile, { ...read, columns: ['Code', 'Description'] })) {
    const code = (values.Code ?? '').trim();
    if (!code) continue;
    if (!titles.has(code)) {
      report.skip({ file: descFile.split('/').pop()!, line, column: 'Code' }, `code ${code} is not in the ${edition} code list`);
      continue;
    }
    const text = cleanText((values.Description ?? '').replace(/\bCross-References\.\s*$/m, '').replace(/^NULL$/i, ''));
    descriptions.set(code, text);
  }

  // Children, for parents whose own description is empty.
  const children = new Map<string, string[]>();
  for (const code of titles.keys()) {
    const parent = naicsParent(code);
    if (parent) children.set(parent, [...(children.get(parent) ?? []), code]);
  }

  const index = new Map<string, string[]>();
  const indexFile = findTable(join(dir, `${edition}_NAICS_Index_File`));
  if (indexFile) {
    const indexCode = `NAICS${String(edition).slice(2)}`;
    for await (const { values, line } of readTable(indexFile, { ...read, columns: [indexCode, 'INDEX ITEM DESCRIPTION'] })) {
      const code = (values[indexCode] ?? '').trim();
      const phrase = cleanText(values['INDEX ITEM DESCRIPTION'] ?? '');
      if (!code || !phrase) continue;
      if (!titles.has(code)) {
        report.skip({ file: indexFile.split('/').pop()!, line, column: indexCode }, `index entry for unknown code ${code}`);
        continue;
      }
      index.set(code, [...(index.get(code) ?? []), phrase]);
    }
  } else {
    report.note(`NAICS ${edition}: no index file, industries have no index phrases`);
  }

  const entities: EntityInput[] = [];
  for (const [code, title] of titles) {
    let description = descriptions.get(code) ?? '';
    const see = SEE_CHILD.exec(description);
    if (see) description = descriptions.get(see[1]) ?? '';
    if (!description && children.has(code)) description = `Includes: ${children.get(code)!.map((c) => titles.get(c)).join('; ')}.`;
    entities.push({
      type: 'industry',
      source,
      code,
      title,
      text: titledText(title, description),
      version: String(edition),
      extra: { level: code.includes('-') ? 2 : code.length, sector: naicsSector(code), index: index.get(code) ?? [] },
    });
  }

  const relations: RelationInput[] = [];
  for (const code of titles.keys()) {
    const parent = naicsParent(code);
    if (parent) relations.push({ source: ref(code), target: ref(parent), kind: 'naics_parent', provenance: `naics ${edition} hierarchy` });
  }

  const crossFile = findTable(join(dir, `${edition}_NAICS_Cross_References`));
  if (crossFile) {
    for await (const { values } of readTable(crossFile, { ...read, columns: ['Code', 'Cross-Reference'] })) {
      const code = (values.Code ?? '').trim();
      const text = values['Cross-Reference'] ?? '';
      for (const m of text.matchAll(CROSS_REF_CODE)) {
        if (m[1] !== code) relations.push({ source: ref(code), target: ref(m[1]), kind: 'naics_cross_reference', provenance: `naics ${edition} cross-references` });
      }
    }
  } else {
    report.note(`NAICS ${edition}: no cross-reference file`);
  }
  return { entities, relations };
}
