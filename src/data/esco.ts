/**
 * ESCO v1.1.1 (European Commission): occupations, skills (with skill type and reuse level), skill
 * groups, ISCO-08 groups, occupation-skill relations (essential / optional), skill-skill
 * relations, and the broader-concept hierarchies of both pillars.
 */
import { basename, join } from 'node:path';

import type { EntityInput, EntityType, RelationInput } from '../store/index.js';
import type { IngestReport } from './report.js';
import { readTable, requireTable } from './table.js';
import { type Loaded, titledText } from './types.js';

export interface EscoOptions {
  dir: string;
  report: IngestReport;
  onError?: 'skip' | 'fail';
}

const BASE = 'http://data.europa.eu/esco/';

/**
 * The entity reference of an ESCO concept URI: occupations and skills by the last part of the URI
 * (`occupation:esco:<uuid>`, `skill:esco:<uuid>`), ISCO groups by their code
 * (`occupation:isco:2654`), ISCED-F skill groups as `skill:esco:isced-f-<code>`.
 */
export function escoRef(uri: string): string | undefined {
  if (!uri?.startsWith(BASE)) return undefined;
  const [kind, ...rest] = uri.slice(BASE.length).split('/');
  const last = rest.join('-');
  if (!last) return undefined;
  switch (kind) {
    case 'occupation':
      return `occupation:esco:${last}`;
    case 'skill':
      return `skill:esco:${last}`;
    case 'isco':
      return `occupation:isco:${last.replace(/^C/, '')}`;
    case 'isced-f':
      return `skill:esco:isced-f-${last}`;
    default:
      return undefined;
  }
}

/** ESCO's multi-valued cells hold one value per line. */
function lines(cell: string | undefined): string[] {
  return (cell ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
}

export async function loadEsco(options: EscoOptions): Promise<Loaded> {
  const { dir, report } = options;
  const read = { report, onError: options.onError };
  const entities: EntityInput[] = [];
  const relations: RelationInput[] = [];

  const concepts = async (name: string, columns: readonly string[], make: (v: Record<string, string>, ref: string) => EntityInput | undefined) => {
    const path = requireTable(join(dir, name));
    for await (const { values, line } of readTable(path, { ...read, columns: ['conceptUri', 'preferredLabel', 'description', ...columns] })) {
      const ref = escoRef(values.conceptUri);
      if (!ref) {
        report.skip({ file: basename(path), line, column: 'conceptUri' }, 'not an ESCO concept URI');
        continue;
      }
      const label = values.preferredLabel?.trim();
      if (!label) {
        report.skip({ file: basename(path), line, column: 'preferredLabel' }, 'no label');
        continue;
      }
      const entity = make(values, ref);
      if (entity) entities.push(entity);
    }
  };
  const entity = (ref: string, title: string, description: string, extra: Record<string, unknown>): EntityInput => {
    const [type, source, ...code] = ref.split(':');
    return { type: type as EntityType, source, code: code.join(':'), title, text: titledText(title, description), version: 'v1.1.1', extra };
  };

  await concepts('occupations_en', ['iscoGroup', 'code', 'altLabels'], (v, ref) =>
    entity(ref, v.preferredLabel.trim(), v.description ?? '', { iscoGroup: v.iscoGroup, escoCode: v.code, altLabels: lines(v.altLabels) }),
  );
  await concepts('skills_en', ['skillType', 'reuseLevel', 'altLabels'], (v, ref) =>
    entity(ref, v.preferredLabel.trim(), v.description ?? '', { skillType: v.skillType, reuseLevel: v.reuseLevel, altLabels: lines(v.altLabels) }),
  );
  await concepts('skillGroups_en', ['code'], (v, ref) => entity(ref, v.preferredLabel.trim(), v.description ?? '', { group: true, escoCode: v.code }));
  await concepts('ISCOGroups_en', ['code'], (v, ref) => entity(ref, v.preferredLabel.trim(), v.description ?? '', { iscoCode: v.code }));

  for (const e of entities) {
    const isco = e.type === 'occupation' && e.source === 'esco' ? (e.extra?.iscoGroup as string | undefined) : undefined;
    if (isco) relations.push({ source: `${e.type}:${e.source}:${e.code}`, target: `occupation:isco:${isco}`, kind: 'isco_group', provenance: 'esco v1.1.1 occupations iscoGroup' });
  }

  const links = async (name: string, from: string, to: string, relation: (v: Record<string, string>) => { kind: string; weight: number }, columns: readonly string[] = []) => {
    const path = requireTable(join(dir, name));
    for await (const { values, line } of readTable(path, { ...read, columns: [from, to, ...columns] })) {
      const source = escoRef(values[from]);
      const target = escoRef(values[to]);
      if (!source || !target) {
        report.skip({ file: basename(path), line, column: source ? to : from }, 'not an ESCO concept URI');
        continue;
      }
      relations.push({ source, target, ...relation(values), provenance: `esco v1.1.1 ${name}` });
    }
  };
  await links('occupationSkillRelations', 'occupationUri', 'skillUri', (v) =>
    v.relationType === 'essential' ? { kind: 'esco_essential_skill', weight: 1 } : { kind: 'esco_optional_skill', weight: 0.5 },
    ['relationType'],
  );
  await links('skillSkillRelations', 'originalSkillUri', 'relatedSkillUri', (v) => ({ kind: 'esco_skill_relation', weight: v.relationType === 'essential' ? 1 : 0.5 }), ['relationType']);
  await links('broaderRelationsSkillPillar', 'conceptUri', 'broaderUri', () => ({ kind: 'esco_broader', weight: 1 }));
  await links('broaderRelationsOccPillar', 'conceptUri', 'broaderUri', () => ({ kind: 'esco_broader', weight: 1 }));
  return { entities, relations };
}
