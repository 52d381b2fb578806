/** The command line, run in-process on the fixture data with a temporary home. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { build } from '../src/build.js';
import { runCli as run } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');

const Cli = suite('cli');
let home: string;
Cli.before.each(() => {
  home = mkdtempSync(join(tmpdir(), 'laborspace-home-'));
});
Cli.after.each(() => rmSync(home, { recursive: true, force: true }));

Cli('should ingest and print a JSON summary, then show an entity with its relations', async () => {
  const summary = JSON.parse(await run('--home', home, '--json', 'ingest', '--data', FIXTURES, '--naics-2022', join(FIXTURES, 'naics', '2022')));
  assert.ok(summary.written.inserted > 500);
  assert.ok(summary.entities.some((e: { source: string }) => e.source === 'naics2022'));
  assert.ok(summary.entities.some((e: { type: string }) => e.type === 'firm'));
  const shown = JSON.parse(await run('--home', home, '--json', 'show', 'occupation:onet:29-1141.00', '--limit', '2'));
  assert.is(shown.entity.title, 'Registered Nurses');
  const skills = shown.relations.find((g: { kind: string }) => g.kind === 'onet_skill');
  assert.is(skills.direction, 'out');
  assert.is(skills.shown.length, 2);
  assert.ok(skills.total > 2);
  try {
    await run('--home', home, 'show', 'industry:622110');
    assert.unreachable('two editions hold 622110');
  } catch (e) {
    assert.match((e as Error).message, /industry:622110 is ambiguous: industry:naics:622110, industry:naics2022:622110/);
  }
  const text = await run('--home', home, 'show', 'industry:naics:622110');
  assert.match(text, /^industry:naics:622110 {2}General Medical and Surgical Hospitals/);
  assert.match(text, /-> naics_parent \(1\)\n\s+1\.000 {2}industry:naics:62211 {2}General Medical and Surgical Hospitals/);
});

Cli('should print the summary as tables', async () => {
  const text = await run('--home', home, 'ingest', '--data', FIXTURES);
  assert.match(text, /Ingested .* entities; .* relations\./);
  assert.match(text, /│ occupation │ onet +│ 4 +│/);
  assert.match(text, /wrong number of fields \(expected 2, got 3\)/);
});

Cli('should explain bad references and bad options', async () => {
  await run('--home', home, 'ingest', '--data', FIXTURES);
  try {
    await run('--home', home, 'show', 'industry:naics:62211x');
    assert.unreachable('should throw');
  } catch (e) {
    assert.match((e as Error).message, /no entity industry:naics:62211x; did you mean industry:naics:622110 \(General Medical and Surgical Hospitals\), industry:naics:62211 /);
  }
  for (const [args, message] of [
    [['show', 'x', '--limit', '0'], /must be a positive integer/],
    [['ingest', '--on-error', 'maybe'], /Allowed choices are skip, fail/],
    [['ingest', '--firm-columns', 'name=A'], /needs name=... and description=.../],
    [['ingest', '--firms', 'x.csv'], /--firms needs --firm-columns/],
  ] as const) {
    try {
      await run('--home', home, ...args);
      assert.unreachable(`should reject ${args.join(' ')}`);
    } catch (e) {
      assert.match((e as Error).message, message);
    }
  }
});

Cli.run();

const Near = suite('near on a built space: long queries, files and standard input');
let space: string;
Near.before(async () => {
  space = mkdtempSync(join(tmpdir(), 'laborspace-near-'));
  await build(space, { dataDir: FIXTURES, threads: 2, train: false });
});
Near.after(() => rmSync(space, { recursive: true, force: true }));

/** The CLI in a process of its own (the crash was the process's), with its exit code and output. */
function cliProcess(args: string[], input?: string) {
  const code = "import('./src/cli/main.ts').then((m) => m.main(['node', 'laborspace', ...process.argv.slice(1)])).catch((e) => { console.error('laborspace: ' + e.message); process.exitCode = 1; })";
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', code, '--', ...args], { cwd: join(import.meta.dirname, '..'), input, encoding: 'utf8' });
}

const posting = `Registered nurse for the intensive care unit. ${'Assess patients, give medication, keep records, work night shifts. '.repeat(40)}`;

Near('should refuse a command line past 16 KiB with a clear error instead of crashing', () => {
  // onnxruntime used to overflow its stack on the ~29 KB command line and kill the process (rc 139).
  const r = cliProcess(['--home', space, 'near', 'nurse '.repeat(5000)]);
  assert.is(r.status, 1, `exit code (signal ${r.signal}): ${r.stderr}`);
  assert.match(r.stderr, /laborspace: the command line is 30,0\d\d bytes, more than 16,384: pass long text in a file \(near --query-file PATH, or - for standard input\)/);
});

Near('should read the query from a file or standard input, as from an argument', async () => {
  const file = join(space, 'query.txt');
  writeFileSync(file, `${posting}\n`);
  const byArgument = JSON.parse(await run('--home', space, '--json', 'near', posting, '--k', '2'));
  const byFile = JSON.parse(await run('--home', space, '--json', 'near', '--query-file', file, '--k', '2'));
  assert.equal(byFile.results, byArgument.results);
  const byStdin = cliProcess(['--home', space, '--json', 'near', '--query-file', '-', '--k', '2'], posting);
  assert.is(byStdin.status, 0, byStdin.stderr);
  assert.equal(JSON.parse(byStdin.stdout).results, byArgument.results);
});

Near('should say what is wrong with a query too long, missing or given twice', async () => {
  const file = join(space, 'long.txt');
  writeFileSync(file, 'nurse '.repeat(1000));
  for (const [args, message] of [
    [['near', '--query-file', file], /the query is 5,999 characters long; at most 5,000 are accepted \(the encoder reads only the first 128 tokens/],
    [['near'], /near needs a query: an argument, or --query-file PATH \(- for standard input\)/],
    [['near', 'nurse', '--query-file', file], /give the query as an argument or with --query-file, not both/],
    [['near', '--query-file', join(space, 'missing.txt')], /--query-file .*missing\.txt: ENOENT/],
  ] as const) {
    try {
      await run('--home', space, ...args);
      assert.unreachable(`should reject ${args.join(' ')}`);
    } catch (e) {
      assert.match((e as Error).message, message);
    }
  }
});

Near.run();
