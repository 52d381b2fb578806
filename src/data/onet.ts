/**
 * O*NET 29.2 (USDOL/ETA, CC BY 4.0): occupations with task statements, alternate and reported
 * titles (kept in `extra` as aliases), the skill, knowledge and work-style elements as skills with
 * their importance for each occupation (Scale ID "IM"), technology skills, and related
 * occupations. Reads the Excel release or the tab-delimited text release (same file names).
 */
import { basename, join } from 'node:path';

import type { EntityInput, RelationInput } from '../store/index.js';
import type { IngestReport } from './report.js';
import { readTable, requireTable, type TableRow } from './table.js';
import { cleanText, type Loaded, titledText } from './types.js';

export interface OnetOptions {
  dir: string;
  report: IngestReport;
  onError?: 'skip' | 'fail';
}

/** The element files read for importance, and the relation kind each gives. */
const ELEMENT_FILES = [
  { file: 'Skills', kind: 'onet_skill' },
  { file: 'Knowledge', kind: 'onet_knowledge' },
  { file: 'Work Styles', kind: 'onet_work_style' },
] as const;

/** Weights of O*NET's relatedness tiers (its own ranking: Primary-Short above Primary-Long above Supplemental). */
const RELATEDNESS: Record<string, number> = { 'Primary-Short': 1, 'Primary-Long': 0.75, Supplemental: 0.5 };

/** A stable code for a technology name: lower case, runs of other characters as '-'. */
export function slug(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9+#]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export async function loadOnet(options: OnetOptions): Promise<Loaded> {
  const { dir, report } = options;
  const read = { report, onError: options.onError };
  const rows = (name: string, columns: readonly string[]): AsyncGenerator<TableRow> => readTable(requireTable(join(dir, name)), { ...read, columns });
  const occ = (code: string) => `occupation:onet:${code}`;

  const occupations = new Map<string, { title: string; description: string; tasks: string[]; alternateTitles: string[]; reportedTitles: string[] }>();
  for await (const { values } of rows('Occupation Data', ['O*NET-SOC Code', 'Title', 'Description'])) {
    const code = values['O*NET-SOC Code']?.trim();
    if (code) occupations.set(code, { title: values.Title.trim(), description: values.Description ?? '', tasks: [], alternateTitles: [], reportedTitles: [] });
  }
  // Aliases of an occupation: rows for unknown codes are reported, not dropped silently.
  const attach = async (name: string, column: string, field: 'tasks' | 'alternateTitles' | 'reportedTitles') => {
    const file = basename(requireTable(join(dir, name)));
    for await (const { values, line } of rows(name, ['O*NET-SOC Code', column])) {
      const o = occupations.get(values['O*NET-SOC Code']?.trim());
      const text = cleanText(values[column] ?? '');
      if (!o) report.skip({ file, line, column: 'O*NET-SOC Code' }, 'unknown occupation');
      else if (text) o[field].push(text);
    }
  };
  await attach('Task Statements', 'Task', 'tasks');
  await attach('Alternate Titles', 'Alternate Title', 'alternateTitles');
  await attach('Sample of Reported Titles', 'Reported Job Title', 'reportedTitles');

  const entities: EntityInput[] = [...occupations].map(([code, o]) => ({
    type: 'occupation',
    source: 'onet',
    code,
    title: o.title,
    text: titledText(o.title, o.description),
    version: '29.2',
    extra: { tasks: o.tasks, alternateTitles: o.alternateTitles, reportedTitles: o.reportedTitles },
  }));
  const relations: RelationInput[] = [];

  const elementNames = new Map<string, { name: string; description: string }>();
  for await (const { values } of rows('Content Model Reference', ['Element ID', 'Element Name', 'Description'])) {
    elementNames.set(values['Element ID'].trim(), { name: values['Element Name'].trim(), description: values.Description ?? '' });
  }
  const elementsUsed = new Map<string, string>(); // element id -> relation kind
  for (const { file, kind } of ELEMENT_FILES) {
    for await (const { values } of rows(file, ['O*NET-SOC Code', 'Element ID', 'Scale ID', 'Data Value'])) {
      if (values['Scale ID'] !== 'IM') continue;
      const id = values['Element ID'].trim();
      const weight = Number(values['Data Value']);
      if (!Number.isFinite(weight)) continue;
      elementsUsed.set(id, kind);
      relations.push({ source: occ(values['O*NET-SOC Code'].trim()), target: `skill:onet:${id}`, kind, weight, provenance: `onet 29.2 ${file} importance` });
    }
  }
  for (const [id, kind] of elementsUsed) {
    const element = elementNames.get(id);
    if (!element) {
      report.note(`O*NET: element ${id} has no Content Model Reference entry`);
      continue;
    }
    entities.push({
      type: 'skill',
      source: 'onet',
      code: id,
      title: element.name,
      text: titledText(element.name, element.description),
      version: '29.2',
      extra: { element: kind.replace('onet_', '') },
    });
  }

  const technologies = new Map<string, EntityInput>();
  for await (const { values } of rows('Technology Skills', ['O*NET-SOC Code', 'Example', 'Commodity Code', 'Commodity Title', 'Hot Technology', 'In Demand'])) {
    const name = cleanText(values.Example ?? '');
    const code = slug(name);
    if (!code) continue;
    if (!technologies.has(code)) {
      const commodity = cleanText(values['Commodity Title'] ?? '');
      technologies.set(code, {
        type: 'skill',
        source: 'onet-tech',
        code,
        title: name,
        text: commodity ? `${name}. ${commodity}` : name,
        version: '29.2',
        extra: { commodityCode: values['Commodity Code'], commodity, hot: values['Hot Technology'] === 'Y', inDemand: values['In Demand'] === 'Y' },
      });
    }
    relations.push({ source: occ(values['O*NET-SOC Code'].trim()), target: `skill:onet-tech:${code}`, kind: 'onet_technology', weight: 1, provenance: 'onet 29.2 Technology Skills' });
  }
  entities.push(...technologies.values());

  for await (const { values } of rows('Related Occupations', ['O*NET-SOC Code', 'Related O*NET-SOC Code', 'Relatedness Tier', 'Index'])) {
    const weight = RELATEDNESS[values['Relatedness Tier']?.trim()] ?? 0.5;
    relations.push({
      source: occ(values['O*NET-SOC Code'].trim()),
      target: occ(values['Related O*NET-SOC Code'].trim()),
      kind: 'onet_related',
      weight,
      provenance: `onet 29.2 Related Occupations (${values['Relatedness Tier']}, index ${values.Index})`,
    });
  }
  return { entities, relations };
}
