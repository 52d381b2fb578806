/**
 * Relations between the sources: ESCO <-> O*NET occupations (Nesta's crosswalk, whose O*NET-SOC
 * 2010 codes are mapped to O*NET 29.2 codes with the 2010 -> 2019 crosswalk), ISCO-08 -> O*NET
 * (BLS, via SOC 2010 -> 2018), NAICS sector -> occupation employment shares from BLS OEWS May 2024
 * (SOC 2018 codes, some of them BLS aggregates such as 21-1018, spread over their O*NET
 * occupations with the BLS National Employment Matrix crosswalk), and the Census NAICS
 * concordances 2002 -> 2017 (for SIC-coded firms).
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
  for await (const { values } of readTable(path, { report: options.report, onError: options.onError, delimiter: ';', columns: ['soc2010_code', 'soc2019_code'] })) {
    const from = values.soc2010_code?.trim();
    const to = values.soc2019_code?.trim();
    if (from && to) link(map, from, to);
  }
  return map;
}

export async function loadEscoOnetCrosswalk(options: CrosswalkOptions): Promise<RelationInput[]> {
  const { dir, report } = options;
  const to2019 = await onet2010To2019(dir, options);
  const path = requireTable(join(dir, 'onet_esco_nesta', 'esco_onet_crosswalk_Nov2020'));
  const relations: RelationInput[] = [];
  for await (const { values, line } of readTable(path, { report, onError: options.onError, columns: ['concept_uri', 'onet_code', 'confidence'] })) {
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
export async function socToOnet(options: CrosswalkOptions): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  for (const code of options.onetCodes) link(map, code.slice(0, 7), code);
  const known = new Set(options.onetCodes);
  const path = requireTable(join(options.dir, 'onet_soc', 'nem-onet-to-soc-crosswalk'));
  for await (const { values } of readTable(path, { report: options.report, onError: options.onError, headerRow: 5, columns: ['O*NET-SOC Code', 'NEM Code'] })) {
    const code = values['O*NET-SOC Code']?.trim();
    const nem = values['NEM Code']?.trim();
    if (code && nem && known.has(code)) link(map, nem, code);
  }
  return map;
}

export async function loadOewsEmployment(options: CrosswalkOptions, bySoc: Map<string, string[]>): Promise<RelationInput[]> {
  const { dir, report } = options;
  const path = requireTable(join(dir, 'bls_oews_industry_occupation', 'natsector_M2024_dl'));
  const rows: { sector: string; soc: string; employment: number }[] = [];
  const totals = new Map<string, number>();
  for await (const { values, line } of readTable(path, { report, onError: options.onError, columns: ['O_GROUP', 'TOT_EMP', 'NAICS', 'OCC_CODE'] })) {
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

/** Adds `to` under `from` in a one-to-many map. */
function link(map: Map<string, string[]>, from: string, to: string): void {
  const list = map.get(from) ?? [];
  if (!list.includes(to)) list.push(to);
  map.set(from, list);
}

/** A concordance file's pairs as old code -> new codes. */
async function concordance(path: string, newColumn: string, oldColumn: string, options: CrosswalkOptions & { headerRow?: number }): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  for await (const { values } of readTable(path, { report: options.report, onError: options.onError, headerRow: options.headerRow, columns: [newColumn, oldColumn] })) {
    const to = values[newColumn]?.trim();
    const from = values[oldColumn]?.trim();
    if (/^\d{6}$/.test(to) && /^\d{6}$/.test(from)) link(map, from, to);
  }
  return map;
}

/** NAICS 2002 code -> NAICS 2017 codes through the Census concordances 2002 -> 2007 -> 2012 -> 2017. */
export async function naics2002To2017(options: CrosswalkOptions): Promise<Map<string, string[]>> {
  const dir = join(options.dir, 'naics_concordances');
  const to2007 = await concordance(requireTable(join(dir, '2007_to_2002_NAICS')), '2007 NAICS Code', '2002 NAICS Code', options);
  const to2012 = await concordance(requireTable(join(dir, '2012_to_2007_NAICS')), '2012 NAICS Code', '2007 NAICS Code', options);
  const to2017 = await concordance(requireTable(join(dir, '2017_to_2012_NAICS')), '2017 NAICS Code', '2012 NAICS Code', { ...options, headerRow: 3 });
  const chain = new Map<string, string[]>();
  for (const [code2002, codes2007] of to2007)
    for (const c2007 of codes2007)
      for (const c2012 of to2012.get(c2007) ?? []) for (const c2017 of to2017.get(c2012) ?? []) link(chain, code2002, c2017);
  return chain;
}

/**
 * ISCO-08 unit groups -> O*NET occupations: BLS's ISCO-08 -> SOC 2010 crosswalk, then SOC 2010 ->
 * 2018, then SOC 2018 -> O*NET. A pair BLS marks as a part ("*") weighs 0.5, a whole match 1.
 */
/** SOC 2010 code -> SOC 2018 codes (BLS crosswalk, many-to-many). */
export async function soc2010To2018(options: Pick<CrosswalkOptions, 'dir' | 'report' | 'onError'>): Promise<Map<string, string[]>> {
  const soc2018 = new Map<string, string[]>();
  const socPath = requireTable(join(options.dir, 'soc_2010_2018', 'soc_2010_to_2018_crosswalk'));
  for await (const { values } of readTable(socPath, { report: options.report, onError: options.onError, headerRow: 9, columns: ['2010 SOC Code', '2018 SOC Code'] })) {
    const from = values['2010 SOC Code']?.trim();
    const to = values['2018 SOC Code']?.trim();
    if (from && to) link(soc2018, from, to);
  }
  return soc2018;
}

export async function loadIscoOnetCrosswalk(options: CrosswalkOptions, bySoc: Map<string, string[]>): Promise<RelationInput[]> {
  const soc2018 = await soc2010To2018(options);
  const path = requireTable(join(options.dir, 'isco_soc', 'ISCO_SOC_Crosswalk'));
  const relations: RelationInput[] = [];
  for await (const { values, line } of readTable(path, { report: options.report, onError: options.onError, columns: ['ISCO-08 Code', '2010 SOC Code', 'part'] })) {
    const isco = values['ISCO-08 Code']?.trim();
    const soc2010 = values['2010 SOC Code']?.trim();
    if (!/^\d{4}$/.test(isco) || !soc2010) continue;
    const targets = (soc2018.get(soc2010) ?? []).flatMap((soc) => (bySoc.get(soc) ?? []).map((code) => ({ soc, code })));
    if (!targets.length) {
      options.report.skip({ file: basename(path), line, column: '2010 SOC Code' }, `SOC 2010 ${soc2010} reaches no O*NET occupation`);
      continue;
    }
    for (const { soc, code } of targets)
      relations.push({
        source: `occupation:isco:${isco}`,
        target: `occupation:onet:${code}`,
        kind: 'isco_onet_crosswalk',
        weight: values.part?.trim() === '*' ? 0.5 : 1,
        provenance: `bls isco-08 -> soc 2010 ${soc2010} -> soc 2018 ${soc}`,
      });
  }
  return relations;
}
