import fs, { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

import ExcelJS from 'exceljs';
import JSZip from 'jszip';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { loadEscoOnetCrosswalk, loadIscoOnetCrosswalk, loadOewsEmployment, naics2002To2017, socToOnet } from '../src/data/crosswalks.js';
import { IngestError } from '../src/data/errors.js';
import { escoRef, loadEsco } from '../src/data/esco.js';
import { loadFirmFile, parseFirmColumns } from '../src/data/firms.js';
import { IndustryMatcher, industryTokens } from '../src/data/industry-matcher.js';
import { ingest, MAX_SKIP_GROUPS } from '../src/data/ingest.js';
import { formatIngestSummary } from '../src/cli/commands/ingest.js';
import { loadNaics, naicsParent, naicsSector, stripTrilateral } from '../src/data/naics.js';
import { loadOnet } from '../src/data/onet.js';
import { IngestReport } from '../src/data/report.js';
import { readTable, requireTable, type TableRow } from '../src/data/table.js';
import { Store } from '../src/store/index.js';
import { assertRejects as rejects } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');

async function collect(path: string, options = {}): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  for await (const row of readTable(path, options)) rows.push(row);
  return rows;
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'laborspace-data-'));
}

const Table = suite('readTable');

Table('should read CSV with a BOM, CRLF line ends and multi-line quoted fields, plain or gzipped', async () => {
  const dir = tmp();
  try {
    const csv = '\ufeffcode,text\r\n1,"first line\r\nsecond line"\r\n2,plain\r\n';
    writeFileSync(join(dir, 'a.csv'), csv);
    writeFileSync(join(dir, 'b.csv.gz'), gzipSync(csv));
    for (const file of ['a.csv', 'b.csv.gz']) {
      const rows = await collect(join(dir, file));
      assert.equal(rows.map((r) => r.values), [{ code: '1', text: 'first line\r\nsecond line' }, { code: '2', text: 'plain' }], file);
      assert.equal(rows.map((r) => r.line), [2, 4], `${file}: line numbers where each record starts`);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should read UTF-8 split anywhere across chunks, and fail on other bytes naming the file, byte and line', async () => {
  const dir = tmp();
  try {
    // Two-, three- and four-byte characters at every offset against the stream's 64 KiB chunks.
    const text = Array.from({ length: 9000 }, (_, i) => `${i},é€😀${'x'.repeat(i % 5)}`).join('\n');
    writeFileSync(join(dir, 'wide.csv'), `code,text\n${text}\n`);
    writeFileSync(join(dir, 'wide.csv.gz'), gzipSync(`code,text\n${text}\n`));
    for (const file of ['wide.csv', 'wide.csv.gz']) {
      const rows = await collect(join(dir, file));
      assert.is(rows.length, 9000, file);
      assert.ok(rows.every((r, i) => r.values.text === `é€😀${'x'.repeat(i % 5)}`), `${file}: every character intact`);
    }
    writeFileSync(join(dir, 'latin1.csv'), Buffer.concat([Buffer.from('code,text\n1,plain\n2,caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    await rejects(collect(join(dir, 'latin1.csv')), IngestError, /^latin1\.csv:3: not valid UTF-8 at byte offset 23: save it as UTF-8$/);
    writeFileSync(join(dir, 'cut.csv.gz'), gzipSync(Buffer.concat([Buffer.from('code,text\n1,'), Buffer.from([0xe2, 0x82])])));
    await rejects(collect(join(dir, 'cut.csv.gz')), IngestError, /^cut\.csv\.gz:2: not valid UTF-8 at byte offset 12 of the decompressed text/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should fail on a required column missing from the header, an empty file, or one without a good row', async () => {
  const dir = tmp();
  try {
    const read = (content: string) => {
      writeFileSync(join(dir, 'a.csv'), content);
      return collect(join(dir, 'a.csv'), { columns: ['Code', 'Description'] });
    };
    await rejects(read('Code,Descr\n1,x\n'), IngestError, /^a\.csv:1 \(column Description\): no column "Description" in the header \(found: Code, Descr\)$/);
    await rejects(read(''), IngestError, /^a\.csv: is empty \(expected a header with Code, Description\)$/);
    await rejects(read('Code,Description\n'), IngestError, /^a\.csv: has a header but no rows it could read$/);
    await rejects(read('Code,Description\n1,x,y\n'), IngestError, /no rows it could read/);
    assert.equal((await read('Code,Description,Extra\n1,x,y\n')).map((r) => r.values.Code), ['1']);
    assert.equal(await collect(join(dir, 'a.csv')), [{ line: 2, values: { Code: '1', Description: 'x', Extra: 'y' } }]);
    writeFileSync(join(dir, 'b.csv'), '');
    assert.equal(await collect(join(dir, 'b.csv')), [], 'without required columns an empty file is no error');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should read tab- and pipe-delimited files without treating quotes specially', async () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'a.txt'), 'A\tB\nx "y\tz\n');
    writeFileSync(join(dir, 'b.psv'), 'A|B\n1|2\n');
    assert.equal((await collect(join(dir, 'a.txt')))[0].values, { A: 'x "y', B: 'z' });
    assert.equal((await collect(join(dir, 'b.psv')))[0].values, { A: '1', B: '2' });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should skip and report a malformed row with file and line, or fail on it when asked', async () => {
  const path = join(FIXTURES, 'naics', '2017', '2017_NAICS_Index_File.csv');
  const report = new IngestReport();
  const rows = await collect(path, { report });
  assert.ok(rows.length > 10);
  assert.equal(report.skipped, [{ file: '2017_NAICS_Index_File.csv', line: 65, reason: 'wrong number of fields (expected 2, got 3)' }]);
  await rejects(collect(path, { onError: 'fail' }), IngestError, /2017_NAICS_Index_File\.csv:65: wrong number of fields/);
});

Table('should read .xlsx sheets with title rows above the header', async () => {
  const dir = tmp();
  try {
    const wb = new ExcelJS.Workbook();
    const sheet = wb.addWorksheet('data');
    sheet.addRow(['A title row']);
    sheet.addRow(['Code', 'Value', 'Note']);
    sheet.addRow(['11-1011.00', 4.5, 'plain']);
    sheet.addRow([]);
    sheet.addRow(['x', { richText: [{ text: 'rich ' }, { text: 'text' }] }, null]);
    await wb.xlsx.writeFile(join(dir, 'a.xlsx'));
    const rows = await collect(join(dir, 'a.xlsx'), { headerRow: 2 });
    assert.equal(rows, [
      { line: 3, values: { Code: '11-1011.00', Value: '4.5', Note: 'plain' } },
      { line: 5, values: { Code: 'x', Value: 'rich text', Note: '' } },
    ]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

/** Rewrites an .xlsx with its zip entries in the given order (names not listed keep theirs, after them). */
async function reorderXlsx(path: string, first: string[], drop: string[] = []): Promise<void> {
  const source = await JSZip.loadAsync(readFileSync(path));
  const names = Object.keys(source.files).filter((n) => !source.files[n].dir && !drop.includes(n));
  const ordered = [...first.filter((n) => names.includes(n)), ...names.filter((n) => !first.includes(n))];
  const target = new JSZip();
  for (const name of ordered) target.file(name, await source.files[name].async('uint8array'));
  writeFileSync(path, await target.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' }));
}

Table('should read an .xlsx whose workbook entry comes after its worksheets and shared strings', async () => {
  const dir = tmp();
  try {
    const wb = new ExcelJS.Workbook();
    const sheet = wb.addWorksheet('data');
    sheet.addRow(['Code', 'Title']);
    sheet.addRow(['11-1011.00', 'Chief Executives']);
    const path = join(dir, 'late-workbook.xlsx');
    await wb.xlsx.writeFile(path);
    // With the relations and shared strings ahead of the sheet, exceljs's streaming reader parses the
    // sheet before it has seen xl/workbook.xml and fails every time; the reader must still cope.
    await reorderXlsx(path, ['[Content_Types].xml', '_rels/.rels', 'xl/_rels/workbook.xml.rels', 'xl/sharedStrings.xml', 'xl/worksheets/sheet1.xml']);
    assert.equal(await collect(path), [{ line: 2, values: { Code: '11-1011.00', Title: 'Chief Executives' } }]);
    await reorderXlsx(path, [], ['xl/workbook.xml']);
    await rejects(collect(path), IngestError, /late-workbook\.xlsx: has no worksheet 0/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should read a later worksheet of an .xlsx whose worksheets come before its shared strings', async () => {
  const dir = tmp();
  try {
    const wb = new ExcelJS.Workbook();
    for (const name of ['first', 'second', 'third']) {
      const sheet = wb.addWorksheet(name);
      sheet.addRow(['Code', 'Sheet']);
      for (let i = 0; i < 2000; i++) sheet.addRow([`c${i}`, name]);
    }
    const path = join(dir, 'sheets-first.xlsx');
    await wb.xlsx.writeFile(path);
    // Worksheets ahead of the shared strings are spooled by exceljs to temporary files, which it
    // deletes as soon as the next sheet is asked for: a skipped sheet must not leave a dangling read.
    await reorderXlsx(path, ['[Content_Types].xml', '_rels/.rels', 'xl/workbook.xml', 'xl/_rels/workbook.xml.rels', 'xl/worksheets/sheet1.xml', 'xl/worksheets/sheet2.xml', 'xl/worksheets/sheet3.xml']);
    // On a busy disk or thread pool the spool file's open can finish after that deletion; slowing the
    // opens down makes the race happen every time.
    const open = fs.open;
    (fs as { open: unknown }).open = (...args: Parameters<typeof fs.open>) => setTimeout(() => (open as (...a: unknown[]) => void)(...args), 30);
    try {
      const rows = await collect(path, { sheetIndex: 2 });
      assert.is(rows.length, 2000);
      assert.ok(rows.every((r) => r.values.Sheet === 'third'));
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      fs.open = open;
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should number each CSV record by the line it starts on, past empty lines and multi-line fields', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'lines.csv');
    for (const end of ['\n', '\r\n']) {
      writeFileSync(path, ['id,text', '1,"a"', '', '2,"multi', 'line', 'text"', '3,x', '4,"bad",extra', '5,y', ''].join(end));
      const report = new IngestReport();
      const rows = await collect(path, { report });
      assert.equal(rows.map((r) => [r.values.id, r.line]), [['1', 2], ['2', 4], ['3', 7], ['5', 9]], JSON.stringify(end));
      assert.equal(report.skipped.map((s) => s.line), [8], JSON.stringify(end));
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table('should fail clearly on a missing, corrupt or non-xlsx file', async () => {
  const dir = tmp();
  try {
    await rejects(collect(join(dir, 'none.csv')), IngestError, /none\.csv: file not found/);
    writeFileSync(join(dir, 'bad.csv.gz'), 'not gzip at all');
    await rejects(collect(join(dir, 'bad.csv.gz')), IngestError, /bad\.csv\.gz: not valid gzip data/);
    writeFileSync(join(dir, 'fake.xlsx'), 'not a zip');
    await rejects(collect(join(dir, 'fake.xlsx')), IngestError, /fake\.xlsx: cannot read as \.xlsx/);
    writeFileSync(join(dir, 'open.csv'), 'a,b\n1,"never closed\n');
    await rejects(collect(join(dir, 'open.csv'), { onError: 'fail' }), IngestError, /open\.csv:\d+: quoted field not closed/);
    assert.throws(() => requireTable(join(dir, 'Skills'), ['.xlsx', '.txt']), /Skills: not found \(looked for Skills\.xlsx, Skills\.txt\)/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Table.run();

const Naics = suite('loadNaics');

Naics('should place codes in the hierarchy, sector ranges included', () => {
  assert.is(naicsParent('622110'), '62211');
  assert.is(naicsParent('6221'), '622');
  assert.is(naicsParent('622'), '62');
  assert.is(naicsParent('311'), '31-33');
  assert.is(naicsParent('452'), '44-45');
  assert.is(naicsParent('62'), undefined);
  assert.is(naicsSector('332710'), '31-33');
  assert.is(naicsSector('48-49'), '48-49');
  assert.is(stripTrilateral('Agriculture, Forestry, Fishing and HuntingT'), 'Agriculture, Forestry, Fishing and Hunting');
  assert.is(stripTrilateral('Machine ShopsT '), 'Machine Shops');
  assert.is(stripTrilateral('IT'), 'IT');
});

Naics('should load titles, descriptions (a 5-digit row takes its child text), index phrases and relations', async () => {
  const report = new IngestReport();
  const { entities, relations } = await loadNaics({ dir: join(FIXTURES, 'naics', '2017'), report });
  const byCode = new Map(entities.map((e) => [e.code, e]));
  assert.is(byCode.get('622110')!.title, 'General Medical and Surgical Hospitals');
  assert.ok(byCode.get('62211')!.text.includes('licensed as general medical and surgical hospitals'), 'child text used for "See industry description"');
  assert.ok((byCode.get('622110')!.extra!.index as string[]).length > 0);
  assert.is(byCode.get('31-33')!.extra!.level, 2);
  assert.ok(!byCode.get('62')!.text.includes('Cross-References.'));
  const parents = relations.filter((r) => r.kind === 'naics_parent');
  assert.ok(parents.some((r) => r.source === 'industry:naics:332' && r.target === 'industry:naics:31-33'));
  assert.ok(relations.some((r) => r.kind === 'naics_cross_reference' && r.source === 'industry:naics:332710'));
  assert.is(report.skipped.length, 1, 'the malformed index row');
});

Naics('should load the 2022 edition from the Excel release under its own source', async () => {
  const report = new IngestReport();
  const { entities, relations } = await loadNaics({ dir: join(FIXTURES, 'naics', '2022'), edition: 2022, report });
  const hospitals = entities.find((e) => e.code === '622110')!;
  assert.is(hospitals.source, 'naics2022');
  assert.is(hospitals.version, '2022');
  assert.ok(relations.some((r) => r.source === 'industry:naics2022:622110' && r.target === 'industry:naics2022:62211'));
  assert.equal(report.notes, ['NAICS 2022: no index file, industries have no index phrases', 'NAICS 2022: no cross-reference file']);
});

Naics.run();

async function txtToXlsx(from: string, to: string): Promise<void> {
  for (const file of readdirSync(from)) {
    const wb = new ExcelJS.Workbook();
    const sheet = wb.addWorksheet(basename(file, '.txt'));
    for await (const { values } of readTable(join(from, file))) {
      if (sheet.rowCount === 0) sheet.addRow(Object.keys(values));
      sheet.addRow(Object.values(values));
    }
    await wb.xlsx.writeFile(join(to, file.replace(/\.txt$/, '.xlsx')));
  }
}

const Onet = suite('loadOnet');

Onet('should load occupations with aliases, element importance, technologies and related occupations', async () => {
  const { entities, relations } = await loadOnet({ dir: join(FIXTURES, 'onet', '29.2'), report: new IngestReport() });
  const rn = entities.find((e) => e.code === '29-1141.00')!;
  assert.is(rn.title, 'Registered Nurses');
  assert.ok((rn.extra!.tasks as string[]).length > 5);
  assert.ok((rn.extra!.alternateTitles as string[]).includes('RN (Registered Nurse)') || (rn.extra!.alternateTitles as string[]).length > 5);
  assert.is(entities.filter((e) => e.type === 'occupation').length, 4);
  const reading = relations.find((r) => r.kind === 'onet_skill' && r.source === 'occupation:onet:29-1141.00' && r.target === 'skill:onet:2.A.1.a')!;
  assert.ok(reading.weight! >= 1 && reading.weight! <= 5, 'importance on O*NET\'s 1-5 scale');
  assert.ok(entities.some((e) => e.type === 'skill' && e.source === 'onet' && e.code === '2.A.1.a' && e.title === 'Reading Comprehension'));
  assert.ok(relations.some((r) => r.kind === 'onet_technology' && r.source === 'occupation:onet:15-1252.00'));
  assert.ok(relations.some((r) => r.kind === 'onet_related'));
});

Onet('should read the Excel release and the text release alike', async () => {
  const dir = tmp();
  try {
    await txtToXlsx(join(FIXTURES, 'onet', '29.2'), dir);
    const fromText = await loadOnet({ dir: join(FIXTURES, 'onet', '29.2'), report: new IngestReport() });
    const fromExcel = await loadOnet({ dir, report: new IngestReport() });
    assert.equal(fromExcel, fromText);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Onet('should report a missing release file by name', async () => {
  const dir = tmp();
  try {
    await rejects(loadOnet({ dir, report: new IngestReport() }), IngestError, /Occupation Data: not found/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Onet.run();

const Esco = suite('loadEsco');

Esco('should map concept URIs to references', () => {
  assert.is(escoRef('http://data.europa.eu/esco/occupation/0ee67d5e-8de9'), 'occupation:esco:0ee67d5e-8de9');
  assert.is(escoRef('http://data.europa.eu/esco/skill/abc'), 'skill:esco:abc');
  assert.is(escoRef('http://data.europa.eu/esco/isco/C2654'), 'occupation:isco:2654');
  assert.is(escoRef('http://data.europa.eu/esco/isced-f/0011'), 'skill:esco:isced-f-0011');
  assert.is(escoRef('http://example.org/x'), undefined);
});

Esco('should load occupations, skills, groups and ISCO groups with their relations', async () => {
  const { entities, relations } = await loadEsco({ dir: join(FIXTURES, 'esco', 'v1.1.1'), report: new IngestReport() });
  const gear = entities.find((e) => e.title === 'gear machinist')!;
  assert.is(gear.type, 'occupation');
  assert.ok((gear.extra!.altLabels as string[]).includes('precision gear machinist'), 'multi-line altLabels split');
  assert.ok(entities.some((e) => e.source === 'isco' && e.code === '7223'));
  assert.ok(entities.some((e) => e.type === 'skill' && e.extra!.skillType));
  const kinds = new Set(relations.map((r) => r.kind));
  for (const kind of ['esco_essential_skill', 'esco_optional_skill', 'esco_broader', 'isco_group']) assert.ok(kinds.has(kind), kind);
  assert.ok(relations.some((r) => r.kind === 'isco_group' && r.source === `occupation:esco:${gear.code}` && r.target === 'occupation:isco:7223'));
});

Esco.run();

const Firms = suite('firms');

Firms('should match free-text industries to NAICS phrases', () => {
  const matcher = new IndustryMatcher([
    { code: '622110', text: 'General Medical and Surgical Hospitals', via: 'title' },
    { code: '622110', text: 'Hospitals, general medical and surgical', via: 'index' },
    { code: '611519', text: 'Real estate schools', via: 'index' },
    { code: '531210', text: 'Real estate agencies', via: 'index' },
    { code: '531210', text: 'Real estate brokers offices', via: 'index' },
  ]);
  assert.equal(industryTokens('Banking and Retailing'), ['bank', 'retail']);
  assert.is(matcher.match('hospitals')?.code, '622110');
  assert.is(matcher.match('real estate')?.code, '531210', 'the code with more matching phrases wins');
  assert.is(matcher.match('aerospace'), undefined);
  assert.is(matcher.match(''), undefined);
});

Firms('should load a user firm file through a column mapping, and reject bad mappings', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'crunchbase.csv');
    writeFileSync(path, 'Organization Name,Short Description,Categories\nAcme Health,"Runs hospitals",hospitals\nNo Text,,\nAcme Health,Dup,\n');
    const report = new IngestReport();
    const matcher = new IndustryMatcher([{ code: '622110', text: 'General Medical and Surgical Hospitals', via: 'title' }]);
    const columns = parseFirmColumns('name=Organization Name,description=Short Description,categories=Categories');
    const { entities, relations } = await loadFirmFile(path, columns, 'crunchbase', { report, matcher });
    assert.equal(entities.map((e) => `firm:${e.source}:${e.code}`), ['firm:crunchbase:acme-health']);
    assert.is(relations[0].target, 'industry:naics:622110');
    assert.equal(report.skipped.map((s) => s.reason), ['no description to embed', 'duplicate firm id acme-health']);
    await rejects(loadFirmFile(path, { name: 'Name', description: 'Short Description' }, 'crunchbase', { report, matcher }), IngestError, /^crunchbase\.csv:1 \(column Name\): no column "Name" in the header \(found: Organization Name, Short Description, Categories\)$/);
    const empty = join(dir, 'empty.csv');
    writeFileSync(empty, '');
    await rejects(loadFirmFile(empty, columns, 'crunchbase', { report, matcher }), IngestError, /^empty\.csv: is empty \(expected a header with Organization Name, Short Description, Categories\)$/);
    writeFileSync(empty, 'Organization Name,Short Description,Categories\r\n');
    await rejects(loadFirmFile(empty, columns, 'crunchbase', { report, matcher }), IngestError, /^empty\.csv: has a header but no rows it could read$/);
    await rejects(loadFirmFile(path, columns, 'Crunch Base', { report, matcher }), RangeError, /firm source "Crunch Base"/);
    assert.throws(() => parseFirmColumns('name=A'), /needs name=... and description=.../);
    assert.throws(() => parseFirmColumns('title=A,description=B'), /unknown firm field "title"/);
    assert.throws(() => parseFirmColumns('name'), /"name" is not FIELD=COLUMN/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Firms.run();

const Crosswalks = suite('crosswalks');

Crosswalks('should map Nesta\'s O*NET-SOC 2010 codes to 2019 codes, and OEWS employment to shares', async () => {
  const report = new IngestReport();
  const options = { dir: join(FIXTURES, 'crosswalks'), report, onetCodes: ['29-1141.00', '29-1141.01', '15-1252.00', '51-4041.00'] };
  const crosswalk = await loadEscoOnetCrosswalk(options);
  assert.ok(crosswalk.some((r) => r.target === 'occupation:onet:15-1252.00' && r.provenance!.includes('15-1132.00')), '2010 code mapped forward');
  assert.ok(crosswalk.every((r) => r.weight! > 0 && r.weight! <= 1));
  const bySoc = await socToOnet(options);
  const employment = await loadOewsEmployment(options, bySoc);
  const rn = employment.filter((r) => r.source === 'industry:naics:62' && r.target.startsWith('occupation:onet:29-1141'));
  assert.equal(rn.map((r) => r.target).sort(), ['occupation:onet:29-1141.00', 'occupation:onet:29-1141.01'], 'one SOC spread over its O*NET occupations');
  assert.ok(rn[0].weight! > 0 && rn[0].weight! < 1);
  assert.ok(employment.some((r) => r.source === 'industry:naics:31-33'), 'OEWS sector 31 is NAICS 31-33');
  const isco = await loadIscoOnetCrosswalk(options, bySoc);
  assert.ok(isco.some((r) => r.source === 'occupation:isco:2221' && r.target === 'occupation:onet:29-1141.00'), 'nursing professionals -> registered nurses');
});

Crosswalks('should chain the NAICS concordances from 2002 to 2017', async () => {
  const chain = await naics2002To2017({ dir: join(FIXTURES, 'crosswalks'), report: new IngestReport(), onetCodes: [] });
  assert.equal(chain.get('622110'), ['622110']);
  assert.ok(chain.size >= 3);
});

Crosswalks.run();

const Ingest = suite('ingest');

Ingest('should load every source into the store, checking endpoints, and be idempotent', async () => {
  const store = Store.open(':memory:');
  const first = await ingest(store, { dataDir: FIXTURES });
  assert.ok(first.written.inserted > 500);
  const types = new Set(first.entities.map((e) => e.type));
  assert.equal([...types].sort(), ['firm', 'industry', 'occupation', 'skill']);
  for (const kind of ['naics_parent', 'esco_essential_skill', 'onet_skill', 'esco_onet_crosswalk', 'oews_employment', 'firm_industry'])
    assert.ok(first.relations.some((r) => r.kind === kind), kind);
  assert.ok(first.unknown.some((u) => u.kind === 'esco_onet_crosswalk' && u.examples.includes('occupation:onet:15-1253.00')), 'unknown endpoints are counted');
  // The fixture's O*NET holds four occupations, so most ISCO -> SOC pairs reach none of them.
  const reasons = first.skipped.map((s) => s.reason).filter((r) => !/^SOC 2010 \S+ reaches no O\*NET occupation$/.test(r));
  assert.equal(reasons.sort(), ['no description to embed', 'wrong number of fields (expected 2, got 3)']);
  const second = await ingest(store, { dataDir: FIXTURES });
  assert.equal(second.written, { inserted: 0, updated: 0, unchanged: first.written.inserted });
  assert.equal(second.relations, first.relations);
  store.close();
});

Ingest('should leave the store as it was when a file cannot be read', async () => {
  const dir = tmp();
  try {
    cpSync(FIXTURES, dir, { recursive: true });
    const store = Store.open(':memory:');
    store.upsertEntities([{ type: 'skill', source: 'test', code: 'x', title: 'x', text: 'kept' }]);
    // ESCO loads after NAICS and O*NET: their rows are read by then, none may be written.
    writeFileSync(join(dir, 'esco', 'v1.1.1', 'skills_en.csv.gz'), 'not gzip');
    await rejects(ingest(store, { dataDir: dir }), IngestError, /skills_en\.csv\.gz: not valid gzip data/);
    rmSync(join(dir, 'esco', 'v1.1.1', 'skills_en.csv.gz'));
    rmSync(join(dir, 'crosswalks', 'onet_soc', 'nem-onet-to-soc-crosswalk.xlsx'));
    await rejects(ingest(store, { dataDir: dir }), IngestError, /nem-onet-to-soc-crosswalk: not found/);
    assert.equal(store.entityCounts(), [{ type: 'skill', source: 'test', count: 1 }]);
    assert.equal(store.relationCounts(), []);
    store.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Ingest('should fail on structurally broken sources, naming the file and column, and leave the store as it was', async () => {
  const dir = tmp();
  try {
    cpSync(FIXTURES, dir, { recursive: true });
    const store = Store.open(':memory:');
    const descriptions = join(dir, 'naics', '2017', '2017_NAICS_Descriptions.csv');
    const saved = readFileSync(descriptions);
    writeFileSync(descriptions, '');
    await rejects(ingest(store, { dataDir: dir }), IngestError, /^2017_NAICS_Descriptions\.csv: is empty \(expected a header with Code, Description\)$/);
    writeFileSync(descriptions, saved);
    const occupations = join(dir, 'esco', 'v1.1.1', 'occupations_en.csv');
    writeFileSync(occupations, readFileSync(occupations, 'utf8').replace(/^conceptType,conceptUri,/, 'conceptType,conceptURI,'));
    await rejects(ingest(store, { dataDir: dir }), IngestError, /^occupations_en\.csv:1 \(column conceptUri\): no column "conceptUri" in the header \(found: conceptType, conceptURI, /);
    rmSync(occupations);
    cpSync(join(FIXTURES, 'esco', 'v1.1.1', 'occupations_en.csv'), occupations);
    // Binary garbage inside a valid gzip stream, after the header and one good row.
    const skills = join(dir, 'esco', 'v1.1.1', 'skills_en.csv');
    const [header, first] = readFileSync(skills, 'utf8').split('\n');
    const garbage = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919 + 13) % 256));
    writeFileSync(`${skills}.gz`, gzipSync(Buffer.concat([Buffer.from(`${header}\n${first}\n`), garbage])));
    const at = Buffer.byteLength(`${header}\n${first}\n`) + garbage.findIndex((b) => b >= 0x80);
    await rejects(ingest(store, { dataDir: dir }), IngestError, new RegExp(`^skills_en\\.csv\\.gz:3: not valid UTF-8 at byte offset ${at} of the decompressed text`));
    assert.equal(store.entityCounts(), []);
    store.close();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Ingest('should keep the summary of skipped rows bounded however many ways the rows are broken', async () => {
  const dir = tmp();
  try {
    cpSync(FIXTURES, dir, { recursive: true });
    const skills = join(dir, 'esco', 'v1.1.1', 'skills_en.csv');
    // 120 rows, each with its own wrong field count, and one whose unquoted field holds a quote.
    const broken = Array.from({ length: 120 }, (_, i) => Array.from({ length: 14 + i }, () => 'x').join(','));
    writeFileSync(skills, `${readFileSync(skills, 'utf8')}${broken.join('\n')}\n${'y'.repeat(100_000)}"z\n`);
    const store = Store.open(':memory:');
    const summary = await ingest(store, { dataDir: dir });
    store.close();
    assert.is(summary.skipped.length, MAX_SKIP_GROUPS);
    assert.ok(summary.skippedOmitted && summary.skippedOmitted.groups > 70, JSON.stringify(summary.skippedOmitted));
    assert.ok(summary.skipped.every((g) => g.reason.length <= 200));
    const text = formatIngestSummary(summary);
    assert.ok(text.length < 20_000, `${text.length} characters`);
    assert.match(text, /\.\.\. and \d+ more kinds of skipped rows \(\d+ rows\)/);
    assert.ok(JSON.stringify(summary).length < 30_000);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Ingest('should fail on a malformed row when asked to', async () => {
  const store = Store.open(':memory:');
  await rejects(ingest(store, { dataDir: FIXTURES, onError: 'fail' }), IngestError, /2017_NAICS_Index_File\.csv:65/);
  assert.equal(store.entityCounts(), []);
  store.close();
});

Ingest.run();
