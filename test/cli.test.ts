/** The command line, run in-process on the fixture data with a temporary home. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

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
