/**
 * Firms. Bundled: the Wikipedia companies list (CC BY-SA descriptions, free-text industry matched
 * to NAICS) and the S&P 500 constituents (GICS labels; CIK -> SEC SIC -> NAICS). A user's own
 * firm file (e.g. a Crunchbase CSV export) loads with a column mapping. The Yahoo-derived S&P 500
 * business summaries are not redistributed.
 */
import { basename, join } from 'node:path';

import type { RelationInput } from '../store/index.js';
import type { IndustryMatcher } from './industry-matcher.js';
import { slug } from './onet.js';
import type { IngestReport } from './report.js';
import { readTable, requireTable } from './table.js';
import { cleanText, type Loaded } from './types.js';

interface FirmContext {
  report: IngestReport;
  onError?: 'skip' | 'fail';
  matcher: IndustryMatcher;
}

/** A relation from a firm to the NAICS industry its free-text label matches, if any. */
function matchedIndustry(firmRef: string, label: string, matcher: IndustryMatcher, what: string): RelationInput | undefined {
  const m = label ? matcher.match(label) : undefined;
  if (!m) return undefined;
  return {
    source: firmRef,
    target: `industry:naics:${m.code}`,
    kind: 'firm_industry',
    weight: Math.round(m.score * 1000) / 1000,
    provenance: `match:${m.via} ${what} "${label}" ~ "${m.phrase}"`,
  };
}

function coverage(report: IngestReport, what: string, matched: number, total: number): void {
  report.note(`${what}: ${matched} of ${total} firms linked to a NAICS industry (${total ? Math.round((100 * matched) / total) : 0}%)`);
}

export async function loadWikipediaFirms(dir: string, ctx: FirmContext): Promise<Loaded> {
  const path = requireTable(join(dir, 'wikipedia_companies_boberle'));
  const file = basename(path);
  const out: Loaded = { entities: [], relations: [] };
  let matched = 0;
  for await (const { values, line } of readTable(path, { ...ctx, columns: ['name', 'description', 'industry'] })) {
    const name = cleanText(values.name ?? '');
    const id = (values.column0 ?? '').replace(/^<|>$/g, '').trim() || slug(name);
    const description = cleanText(values.description ?? '');
    if (!name || !id) {
      ctx.report.skip({ file, line, column: 'name' }, 'no name');
      continue;
    }
    if (!description) {
      ctx.report.skip({ file, line, column: 'description' }, 'no description to embed');
      continue;
    }
    const ref = `firm:wiki:${id}`;
    const industry = cleanText(values.industry ?? '');
    out.entities.push({
      type: 'firm',
      source: 'wiki',
      code: id,
      title: name,
      text: description.toLowerCase().startsWith(name.toLowerCase()) ? description : `${name}. ${description}`,
      extra: { industry, country: values.country, employees: Number(values.people) || null, web: values.web },
    });
    const link = matchedIndustry(ref, industry, ctx.matcher, 'wikipedia industry');
    if (link) {
      out.relations.push(link);
      matched++;
    }
  }
  coverage(ctx.report, 'Wikipedia companies', matched, out.entities.length);
  return out;
}

/**
 * SEC SIC code -> NAICS 2017 codes: the Census SIC 1987 -> NAICS 2002 concordance, then the NAICS
 * concordances 2002 -> 2007 -> 2012 -> 2017 (`naics2002To2017`).
 */
export async function sicToNaics2017(dir: string, naics2002To2017: Map<string, string[]>, ctx: FirmContext): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  const path = requireTable(join(dir, 'sic_naics', '1987_SIC_to_2002_NAICS'));
  for await (const { values } of readTable(path, { ...ctx, columns: ['SIC', '2002 NAICS'] })) {
    const sic = (values.SIC ?? '').trim().padStart(4, '0');
    const codes = naics2002To2017.get((values['2002 NAICS'] ?? '').trim()) ?? [];
    if (!/^\d{4}$/.test(sic)) continue;
    const list = map.get(sic) ?? [];
    for (const code of codes) if (!list.includes(code)) list.push(code);
    if (list.length) map.set(sic, list);
  }
  return map;
}

/** SIC codes that map to more NAICS codes than this are linked by their GICS label instead. */
const MAX_SIC_FANOUT = 3;

export async function loadSp500Firms(firmsDir: string, sicMap: Map<string, string[]>, ctx: FirmContext): Promise<Loaded> {
  const sicByCik = new Map<string, string>();
  for await (const { values } of readTable(requireTable(join(firmsDir, 'sec_edgar_cik_ticker_sic')), { ...ctx, columns: ['CIK', 'SIC'] })) {
    if (values.CIK && values.SIC) sicByCik.set(values.CIK.trim().replace(/^0+/, ''), values.SIC.trim().padStart(4, '0'));
  }
  const path = requireTable(join(firmsDir, 'sp500_constituents_gics'));
  const out: Loaded = { entities: [], relations: [] };
  let matched = 0;
  for await (const { values, line } of readTable(path, { ...ctx, columns: ['Symbol', 'Security', 'GICS Sector', 'GICS Sub-Industry', 'Headquarters Location', 'CIK'] })) {
    const symbol = (values.Symbol ?? '').trim();
    const name = cleanText(values.Security ?? '');
    if (!symbol || !name) {
      ctx.report.skip({ file: basename(path), line, column: 'Symbol' }, 'no symbol or name');
      continue;
    }
    const ref = `firm:sp500:${symbol}`;
    const sector = values['GICS Sector'];
    const subIndustry = values['GICS Sub-Industry'];
    out.entities.push({
      type: 'firm',
      source: 'sp500',
      code: symbol,
      title: name,
      text: `${name}. ${subIndustry} company in the ${sector} sector, headquartered in ${values['Headquarters Location']}.`,
      extra: { gicsSector: sector, gicsSubIndustry: subIndustry, cik: values.CIK, founded: values.Founded },
    });
    const sic = sicByCik.get((values.CIK ?? '').trim().replace(/^0+/, ''));
    const codes = (sic && sicMap.get(sic)) || [];
    // A SIC spread over many NAICS codes (7389, "business services, n.e.c.", has 40) says little:
    // the GICS sub-industry, matched as text, is then the better guess.
    const link = codes.length === 0 || codes.length > MAX_SIC_FANOUT ? matchedIndustry(ref, subIndustry, ctx.matcher, 'gics sub-industry') : undefined;
    if (link) out.relations.push(link);
    else if (codes.length <= MAX_SIC_FANOUT)
      for (const code of codes)
        out.relations.push({ source: ref, target: `industry:naics:${code}`, kind: 'firm_industry', weight: 1 / codes.length, provenance: `sec sic ${sic} -> naics 2002 -> 2017 ${code} (census concordances)` });
    if (link || (codes.length && codes.length <= MAX_SIC_FANOUT)) matched++;
  }
  coverage(ctx.report, 'S&P 500 constituents', matched, out.entities.length);
  return out;
}

/** Which columns of a user's firm file hold what. */
export interface FirmColumns {
  name: string;
  description: string;
  /** Stable id; defaults to a slug of the name. */
  id?: string;
  /** Free-text industry or categories, matched to NAICS. */
  categories?: string;
}

/** Parses "name=Organization Name,description=Description" into FirmColumns. */
export function parseFirmColumns(spec: string): FirmColumns {
  const map: Record<string, string> = {};
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new RangeError(`firm column mapping "${part}" is not FIELD=COLUMN`);
    const field = part.slice(0, eq).trim();
    if (!['name', 'description', 'id', 'categories'].includes(field))
      throw new RangeError(`unknown firm field "${field}" (expected name, description, id, categories)`);
    map[field] = part.slice(eq + 1).trim();
  }
  if (!map.name || !map.description) throw new RangeError('firm column mapping needs name=... and description=...');
  return map as unknown as FirmColumns;
}

/** A user's firm file: CSV, TSV or XLSX with a header row, mapped by `columns`, as `firm:<source>:<id>`. */
export async function loadFirmFile(path: string, columns: FirmColumns, source: string, ctx: FirmContext): Promise<Loaded> {
  if (!/^[a-z0-9-]+$/.test(source)) throw new RangeError(`firm source "${source}" must be lower-case letters, digits and '-'`);
  const file = basename(path);
  const out: Loaded = { entities: [], relations: [] };
  const seen = new Set<string>();
  let matched = 0;
  // The mapped columns are required: a file without them, or without a row, fails naming the file.
  for await (const { values, line } of readTable(path, { ...ctx, columns: Object.values(columns) })) {
    const name = cleanText(values[columns.name] ?? '');
    const description = cleanText(values[columns.description] ?? '');
    const id = columns.id ? (values[columns.id] ?? '').trim() : slug(name);
    if (!name || !id) {
      ctx.report.skip({ file, line, column: columns.name }, 'no name');
      continue;
    }
    if (!description) {
      ctx.report.skip({ file, line, column: columns.description }, 'no description to embed');
      continue;
    }
    if (seen.has(id)) {
      ctx.report.skip({ file, line, column: columns.id ?? columns.name }, `duplicate firm id ${id}`);
      continue;
    }
    seen.add(id);
    const ref = `firm:${source}:${id}`;
    const categories = columns.categories ? cleanText(values[columns.categories] ?? '') : '';
    out.entities.push({ type: 'firm', source, code: id, title: name, text: `${name}. ${description}`, extra: { categories } });
    const link = categories ? matchedIndustry(ref, categories, ctx.matcher, 'categories') : undefined;
    if (link) {
      out.relations.push(link);
      matched++;
    }
  }
  coverage(ctx.report, `${file}`, matched, out.entities.length);
  return out;
}
