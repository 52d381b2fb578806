/**
 * Writes test/fixtures/data: a few real rows of each raw file, in the raw layout, around four
 * occupations (registered nurses, software developers, machinists, acute care nurses), their
 * industries, skills, firms and crosswalk rows. O*NET is written in its tab-delimited text
 * release format; OEWS and the NEM crosswalk stay .xlsx. One malformed row is added on purpose
 * (NAICS index file). A maintainer's tool, run against ../shared/data/raw.
 * Usage: node --import tsx scripts/make-test-fixtures.ts [RAW_DIR]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import ExcelJS from 'exceljs';

import { readTable } from '../src/data/table.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const raw = resolve(process.argv[2] ?? join(root, '..', 'shared', 'data', 'raw'));
const out = join(root, 'test', 'fixtures', 'data');

const ONET = ['29-1141.00', '29-1141.01', '15-1252.00', '51-4041.00'];
const NAICS = ['62', '621', '6211', '62111', '621111', '622', '6221', '62211', '622110', '31-33', '332', '3327', '33271', '332710', '332721', '51', '511', '5112', '51121', '511210'];

/**
 * Copies the header and the matching records of a text file (multi-line records kept whole), from
 * the raw collection or, with `from`, another folder in the same layout.
 */
async function excerptText(file: string, keep: (values: Record<string, string>) => boolean, extra = '', from = raw): Promise<void> {
  const source = join(from, file);
  const text = source.endsWith('.gz') ? gunzipSync(readFileSync(source)).toString('utf8') : readFileSync(source, 'utf8');
  let header = text.split(/\r?\n/, 1)[0];
  const delimiter = file.endsWith('.psv') ? '|' : file.includes('semicolon') ? ';' : ',';
  const lines: string[] = [header];
  file = file.replace(/\.gz$/, '');
  for await (const { values } of readTable(source, { delimiter })) {
    // A header with a quoted line break spans lines: write it as parsed instead.
    if ((header.match(/"/g) ?? []).length % 2) lines[0] = header = Object.keys(values).join(delimiter);
    if (!keep(values)) continue;
    const fields = Object.values(values).map((v) => (delimiter === ',' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v));
    lines.push(fields.slice(0, header.split(delimiter).length).join(delimiter));
  }
  write(file, lines.join('\n') + '\n' + extra);
}

function write(file: string, content: string): void {
  mkdirSync(dirname(join(out, file)), { recursive: true });
  writeFileSync(join(out, file), content);
}

/** O*NET xlsx rows -> the tab-delimited text release (same header and columns). */
async function onetText(name: string, keep: (v: Record<string, string>) => boolean): Promise<void> {
  const rows: string[] = [];
  let header: string[] | undefined;
  for await (const { values } of readTable(join(raw, 'onet/29.2', `${name}.xlsx`))) {
    header ??= Object.keys(values);
    if (keep(values)) rows.push(header.map((h) => values[h].replace(/[\t\n]/g, ' ')).join('\t'));
  }
  write(`onet/29.2/${name}.txt`, [header!.join('\t'), ...rows].join('\n') + '\n');
}

async function xlsxExcerpt(file: string, keep: (v: Record<string, string>) => boolean, headerRow = 1): Promise<void> {
  const wb = new ExcelJS.Workbook();
  const sheet = wb.addWorksheet('Sheet1');
  for (let r = 1; r < headerRow; r++) sheet.addRow([`title row ${r}`]);
  let header: string[] | undefined;
  for await (const { values } of readTable(join(raw, file), { headerRow })) {
    if (!header) sheet.addRow((header = Object.keys(values)));
    if (keep(values)) sheet.addRow(header.map((h) => values[h]));
  }
  mkdirSync(dirname(join(out, file)), { recursive: true });
  await wb.xlsx.writeFile(join(out, file));
}

const codeIn = (list: string[]) => (v: Record<string, string>) => list.includes((v.Code ?? v['2017 NAICS US Code'] ?? v.NAICS17 ?? '').trim());
await excerptText('naics/2017/2-6 digit_2017_Codes.csv', codeIn(NAICS));
await excerptText('naics/2017/2017_NAICS_Descriptions.csv', codeIn(NAICS));
await excerptText('naics/2017/2017_NAICS_Cross_References.csv', codeIn(NAICS));
// The last line is malformed on purpose: one field too many.
await excerptText('naics/2017/2017_NAICS_Index_File.csv', codeIn(NAICS), '622110,"Hospitals, general",unexpected\n');

const occ = (v: Record<string, string>) => ONET.includes(v['O*NET-SOC Code']);
for (const name of ['Occupation Data', 'Task Statements', 'Alternate Titles', 'Sample of Reported Titles', 'Skills', 'Knowledge', 'Work Styles', 'Technology Skills'])
  await onetText(name, occ);
await onetText('Related Occupations', (v) => occ(v) && ONET.includes(v['Related O*NET-SOC Code']));
await onetText('Content Model Reference', (v) => /^(1\.C|2\.A|2\.B|2\.C)/.test(v['Element ID']));

// ESCO: the occupations Nesta maps to these O*NET codes, their skills, groups and ISCO chain.
const nesta: Record<string, string>[] = [];
for await (const { values } of readTable(join(raw, 'crosswalks/onet_esco_nesta/esco_onet_crosswalk_Nov2020.csv')))
  if (['29-1141.00', '15-1132.00', '51-4041.00'].includes(values.onet_code)) nesta.push(values);
const escoOcc = new Set(nesta.slice(0, 8).map((v) => v.concept_uri));
const skills = new Set<string>();
for await (const { values } of readTable(join(raw, 'esco/v1.1.1/occupationSkillRelations.csv')))
  if (escoOcc.has(values.occupationUri) && skills.size < 40) skills.add(values.skillUri);
const broader = new Set<string>();
for await (const { values } of readTable(join(raw, 'esco/v1.1.1/broaderRelationsSkillPillar.csv'))) if (skills.has(values.conceptUri)) broader.add(values.broaderUri);
const iscoCodes = new Set<string>();
for await (const { values } of readTable(join(raw, 'esco/v1.1.1/occupations_en.csv')))
  if (escoOcc.has(values.conceptUri)) for (let i = 1; i <= values.iscoGroup.length; i++) iscoCodes.add(values.iscoGroup.slice(0, i));
const e = 'esco/v1.1.1';
await excerptText(`${e}/occupations_en.csv`, (v) => escoOcc.has(v.conceptUri));
await excerptText(`${e}/skills_en.csv`, (v) => skills.has(v.conceptUri));
await excerptText(`${e}/skillGroups_en.csv`, (v) => broader.has(v.conceptUri));
await excerptText(`${e}/ISCOGroups_en.csv`, (v) => iscoCodes.has(v.code));
await excerptText(`${e}/occupationSkillRelations.csv`, (v) => escoOcc.has(v.occupationUri) && skills.has(v.skillUri));
await excerptText(`${e}/skillSkillRelations.csv`, (v) => skills.has(v.originalSkillUri) && skills.has(v.relatedSkillUri));
await excerptText(`${e}/broaderRelationsSkillPillar.csv`, (v) => skills.has(v.conceptUri));
await excerptText(`${e}/broaderRelationsOccPillar.csv`, (v) => escoOcc.has(v.conceptUri));

const firms = ['Kaiser Permanente', 'HCA Healthcare', 'Microsoft', 'Siemens', 'Walmart'];
let undescribed = 0; // one firm without a description, which the loader must skip and report
await excerptText('firms/wikipedia_companies_boberle.csv', (v) => firms.includes(v.name) || v.name === 'China Post' || (v.description === '' && undescribed++ === 0));
await excerptText('firms/sp500_constituents_gics.csv', (v) => ['HCA', 'MSFT', 'UNH'].includes(v.Symbol));
await excerptText('firms/sec_edgar_cik_ticker_sic.psv', (v) => ['HCA', 'MSFT', 'UNH'].includes(v.Ticker));
await excerptText('crosswalks/sic_naics/1987_SIC_to_2002_NAICS.csv', (v) => ['8062', '7372', '6324'].includes(v.SIC.padStart(4, '0')));
await excerptText('crosswalks/onet_esco_nesta/esco_onet_crosswalk_Nov2020.csv', (v) => escoOcc.has(v.concept_uri));
await excerptText('crosswalks/onet_soc/onet_soc_2010_to_2019_crosswalk_semicolon.csv', (v) => ['29-1141.00', '15-1132.00', '51-4041.00'].includes(v.soc2010_code));
await xlsxExcerpt('crosswalks/onet_soc/nem-onet-to-soc-crosswalk.xlsx', (v) => ONET.includes(v['O*NET-SOC Code']), 5);
await xlsxExcerpt('crosswalks/bls_oews_industry_occupation/natsector_M2024_dl.xlsx', (v) => ['62', '31', '51'].includes(v.NAICS) && (['29-1141', '15-1252', '51-4041'].includes(v.OCC_CODE) || v.O_GROUP === 'total'));
// Concordances and ISCO for the firms' SIC codes and the ESCO occupations' ISCO groups; the two
// legacy .xls files are taken from their bundled CSV form.
const bundled = join(root, 'data');
const naics2002 = new Set<string>();
for await (const { values } of readTable(join(out, 'crosswalks/sic_naics/1987_SIC_to_2002_NAICS.csv'))) naics2002.add(values['2002 NAICS']);
const naics2007 = new Set<string>();
await excerptText('crosswalks/naics_concordances/2007_to_2002_NAICS.csv.gz', (v) => naics2002.has(v['2002 NAICS Code']) && !!naics2007.add(v['2007 NAICS Code']), '', bundled);
const naics2012 = new Set<string>();
await excerptText('crosswalks/naics_concordances/2012_to_2007_NAICS.csv.gz', (v) => naics2007.has(v['2007 NAICS Code']) && !!naics2012.add(v['2012 NAICS Code']), '', bundled);
await xlsxExcerpt('crosswalks/naics_concordances/2017_to_2012_NAICS.xlsx', (v) => naics2012.has(v['2012 NAICS Code']), 3);
const soc2010 = new Set<string>();
await excerptText('crosswalks/isco_soc/ISCO_SOC_Crosswalk.csv.gz', (v) => [...iscoCodes].includes(v['ISCO-08 Code']) && !!soc2010.add(v['2010 SOC Code'].trim()), '', bundled);
await xlsxExcerpt('crosswalks/soc_2010_2018/soc_2010_to_2018_crosswalk.xlsx', (v) => soc2010.has(v['2010 SOC Code']), 9);
// NAICS 2022 (Excel only in the raw collection): the same codes.
const code2022 = (v: Record<string, string>) => NAICS.includes((v.Code ?? v['2022 NAICS US Code'] ?? '').trim());
await xlsxExcerpt('naics/2022/2-6 digit_2022_Codes.xlsx', code2022);
await xlsxExcerpt('naics/2022/2022_NAICS_Descriptions.xlsx', code2022);
console.log(`fixtures written to ${out}`);
