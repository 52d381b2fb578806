/** The bundled data set, ingested whole: the counts and links the default space is built from. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import type { IngestSummary } from '../src/data/ingest.js';
import { openHomeStore } from '../src/home.js';
import type { Store } from '../src/store/index.js';
import { BUNDLED_HOME, buildBundledHome, bundledHomeKey } from './bundled-home.js';
import { beforeAll } from './helpers.js';

const Key = suite('the cached bundled home');

Key('should be named by the code and data the space is built from', () => {
  assert.match(BUNDLED_HOME, /laborspace-test-bundled-space-[0-9a-f]{16}$/);
  const root = mkdtempSync(join(tmpdir(), 'laborspace-key-'));
  try {
    mkdirSync(join(root, 'src', 'train'), { recursive: true });
    writeFileSync(join(root, 'src', 'train', 'run.ts'), 'steps = 1');
    writeFileSync(join(root, 'data.csv'), 'a,b\n');
    const key = () => bundledHomeKey(root, ['src', 'data.csv']);
    const first = key();
    assert.is(key(), first, 'the same files, the same key');
    writeFileSync(join(root, 'src', 'train', 'run.ts'), 'steps = 2');
    const edited = key();
    assert.is.not(edited, first, 'a source file edited');
    writeFileSync(join(root, 'src', 'train', 'extra.ts'), '');
    const added = key();
    assert.is.not(added, edited, 'a source file added');
    writeFileSync(join(root, 'data.csv'), 'a,b\n1,2\n');
    assert.is.not(key(), added, 'the data changed');
  } finally {
    rmSync(root, { recursive: true });
  }
});

Key.run();

const Bundled = suite('bundled data');
let store: Store;
let summary: IngestSummary;

beforeAll(Bundled, async () => {
  summary = (await buildBundledHome()).ingest;
  store = openHomeStore(BUNDLED_HOME);
});
Bundled.after(() => store?.close());

const count = (sql: string, ...params: unknown[]) => (store.db.prepare(sql).get(...params) as { n: number }).n;

Bundled('should hold the published counts of each source', () => {
  assert.is(count("SELECT count(*) AS n FROM entities WHERE type = 'occupation' AND source = 'onet'"), 1016, 'O*NET occupations');
  assert.is(count("SELECT count(*) AS n FROM entities WHERE type = 'skill' AND source = 'esco' AND json_extract(extra, '$.group') IS NULL"), 13896, 'ESCO skills');
  assert.is(count("SELECT count(*) AS n FROM entities WHERE type = 'occupation' AND source = 'esco'"), 3007, 'ESCO occupations');
  assert.is(count("SELECT count(*) AS n FROM entities WHERE type = 'industry' AND source = 'naics' AND length(code) = 6"), 1057, 'NAICS 2017 six-digit industries');
  assert.ok(count("SELECT count(*) AS n FROM entities WHERE type = 'firm'") > 1500, 'firms');
});

Bundled('should have every relation kind the design names, all endpoints present', () => {
  const kinds = new Set(summary.relations.map((r) => r.kind));
  for (const kind of ['naics_parent', 'naics_cross_reference', 'esco_essential_skill', 'esco_optional_skill', 'esco_skill_relation', 'esco_broader', 'isco_group', 'onet_skill', 'onet_knowledge', 'onet_work_style', 'onet_technology', 'onet_related', 'esco_onet_crosswalk', 'oews_employment', 'firm_industry'])
    assert.ok(kinds.has(kind), kind);
  assert.is(count('SELECT count(*) AS n FROM relations r LEFT JOIN entities s ON s.id = r.source_id LEFT JOIN entities t ON t.id = r.target_id WHERE s.id IS NULL OR t.id IS NULL'), 0);
});

Bundled('should place NAICS 622110 under 6221 and sector 62', () => {
  const ancestors: string[] = [];
  let ref = 'industry:naics:622110';
  for (;;) {
    const up = store.relations(ref, { kind: 'naics_parent', direction: 'out' });
    if (!up.length) break;
    ref = up[0].target;
    ancestors.push(ref);
  }
  assert.equal(ancestors, ['industry:naics:62211', 'industry:naics:6221', 'industry:naics:622', 'industry:naics:62']);
});

Bundled('should link O*NET registered nurses to an ESCO nursing occupation through the crosswalk', () => {
  const links = store.relations('occupation:onet:29-1141.00', { kind: 'esco_onet_crosswalk', direction: 'in' });
  const titles = links.map((r) => store.entity(r.source)!.title);
  assert.ok(titles.some((t) => /nurse/i.test(t)), titles.join(', '));
});

Bundled('should give health care employment to nurses and link hospital firms to health care', () => {
  const nurses = store.relations('industry:naics:62', { kind: 'oews_employment', direction: 'out' }).find((r) => r.target === 'occupation:onet:29-1141.00');
  assert.ok(nurses && nurses.weight > 0.05, 'registered nurses are more than 5% of health care employment');
  const hca = store.relations('firm:sp500:HCA', { kind: 'firm_industry', direction: 'out' });
  assert.ok(hca.some((r) => r.target.startsWith('industry:naics:62')), JSON.stringify(hca));
});

Bundled.run();
