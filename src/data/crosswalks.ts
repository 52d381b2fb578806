/**
 * Relations between the sources: ESCO <-> O*NET occupations (Nesta's crosswalk, whose O*NET-SOC
 * 2010 codes are mapped to O*NET 29.2 codes with the 2010 -> 2019 crosswalk) and NAICS sector ->
 * occupation employment shares from BLS OEWS May 2024 (SOC 2018 codes, some of them BLS
 * aggregates such as 21-1018, spread over their O*NET occupations with the BLS National
 * Employment Matrix crosswalk).
 */
import { basename, join } from 'node:path';

import type { RelationInput } from '../store/index.js';
import { naicsSector } from './naics.js';
import type { IngestReport } from './report.js';
import { readTable, requireTable } from './table.js';

export interface CrosswalkOptions {
  dir: string;
  report: IngestReport;
  onError?: 'skip' | 'fail';
  /** O*NET 29.2 occupation codes that exist, to spread SOC codes over. */
  onetCodes: readonly string[];
}

/** O*NET-SOC 2010 code -> O*NET-SOC 2019 codes (many-to-many). */
async function onet2010To2019(dir: string, options: CrosswalkOptions): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  const path = requireTable(join(dir, 'onet_soc', 'onet_soc_2010_to_2019_crosswalk_semicolon'));
  for await (const { values } of readTable(path, { report: options.report, onError: options.onError, delimiter: ';' })) {
    const from = values.soc2010_code?.trim();
    const to = values.soc2019_code?.trim();
    if (from && to) map.set(from, [...(map.get(from) ?? []), to]);
  }
  return map;
}

export async function loadEscoOnetCrosswalk(options: CrosswalkOptions): Promise<RelationInput[]> {
  const { dir, report } = options;
  const to2019 = await onet2010To2019(dir, options);
  const path = requireTable(join(dir, 'onet_esco_nesta', 'esco_onet_crosswalk_Nov2020'));
  const relations: RelationInput[] = [];
  for await (const { values, line } of readTable(path, { report, onError: options.onError })) {
    const uuid = values.concept_uri?.split('/').pop();
    const codes = to2019.get(values.onet_code?.trim());
    if (!uuid || !codes) {
      report.skip({ file: basename(path), line, column: uuid ? 'onet_code' : 'concept_uri' }, uuid ? `O*NET-SOC 2010 code ${values.onet_code} not in the 2010 -> 2019 crosswalk` : 'no concept URI');
      continue;
    }
    const confidence = Number(values.confidence);
    for (const code of codes) {
      relations.push({
        source: `occupation:esco:${uuid}`,
        target: `occupation:onet:${code}`,
        kind: 'esco_onet_crosswalk',
        // Nesta's confidence: 2 (strong) / 1 / 0.5 (weak), as a weight in (0, 1].
        weight: Number.isFinite(confidence) && confidence > 0 ? Math.min(1, confidence / 2) : 0.25,
        provenance: `nesta crosswalk Nov 2020 via onet-soc 2010->2019 (${values.onet_code}, confidence ${values.confidence})`,
      });
    }
  }
  return relations;
}

/** SOC 2018 / NEM code -> O*NET 29.2 occupations: O*NET's own SOC prefixes plus BLS's NEM crosswalk. */
async function socToOnet(options: CrosswalkOptions): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  const add = (soc: string, code: string) => {
    const list = map.get(soc) ?? [];
    if (!list.includes(code)) list.push(code);
    map.set(soc, list);
  };
  for (const code of options.onetCodes) add(code.slice(0, 7), code);
  const known = new Set(options.onetCodes);
  const path = requireTable(join(options.dir, 'onet_soc', 'nem-onet-to-soc-crosswalk'));
  for await (const { values } of readTable(path, { report: options.report, onError: options.onError, headerRow: 5 })) {
    const code = values['O*NET-SOC Code']?.trim();
    const nem = values['NEM Code']?.trim();
    if (code && nem && known.has(code)) add(nem, code);
  }
  return map;
}

export async function loadOewsEmployment(options: CrosswalkOptions): Promise<RelationInput[]> {
  const { dir, report } = options;
  const bySoc = await socToOnet(options);
  const path = requireTable(join(dir, 'bls_oews_industry_occupation', 'natsector_M2024_dl'));
  const rows: { sector: string; soc: string; employment: number }[] = [];
  const totals = new Map<string, number>();
  for await (const { values, line } of readTable(path, { report, onError: options.onError })) {
    if (values.O_GROUP !== 'detailed') continue;
    const employment = Number(values.TOT_EMP);
    if (!Number.isFinite(employment)) {
      report.skip({ file: basename(path), line, column: 'TOT_EMP' }, `suppressed employment (${values.TOT_EMP})`);
      continue;
    }
    // OEWS "sector" 99 is federal, state and local government, which NAICS files under 92,
    // Public Administration.
    const sector = values.NAICS.trim() === '99' ? '92' : naicsSector(values.NAICS.trim());
    rows.push({ sector, soc: values.OCC_CODE.trim(), employment });
    totals.set(sector, (totals.get(sector) ?? 0) + employment);
  }
  const relations: RelationInput[] = [];
  for (const { sector, soc, employment } of rows) {
    // OEWS aggregates some detailed SOC codes (e.g. 13-1020 for 13-1021..13-1023) that the NEM
    // crosswalk does not name: spread those over the O*NET occupations of the codes below them.
    const codes = bySoc.get(soc) ?? (soc.endsWith('0') ? [...bySoc].filter(([s]) => s.startsWith(soc.slice(0, 6))).flatMap(([, c]) => c) : []);
    if (!codes.length) codes.push(`${soc}.00`); // reported as an unknown endpoint
    for (const code of codes) {
      relations.push({
        source: `industry:naics:${sector}`,
        target: `occupation:onet:${code}`,
        kind: 'oews_employment',
        // Share of the sector's employment in this occupation (a SOC shared by several O*NET
        // occupations gives each the SOC's share).
        weight: employment / totals.get(sector)!,
        provenance: `bls oews may 2024 natsector ${sector === '92' ? '99 (government)' : sector}, soc ${soc}, ${employment} employed`,
      });
    }
  }
  return relations;
}
