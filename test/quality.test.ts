/** Quality checks of the space built from the bundled data (fine-tuned by the default build). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { aiExposure, compareExposure } from '../src/analysis/exposure.js';
import { LaborSpace } from '../src/space.js';
import { BUNDLED_HOME, buildBundledHome } from './bundled-home.js';
import { beforeAll } from './helpers.js';

const Quality = suite('the space built from the bundled data');
let space: LaborSpace;

beforeAll(Quality, async () => {
  await buildBundledHome();
  space = await LaborSpace.open(BUNDLED_HOME);
});
Quality.after(async () => space?.close());

Quality('should put Registered Nurses among the 10 occupations nearest "registered nurse"', async () => {
  const { results } = await space.near('registered nurse', { types: ['occupation'], k: 10 });
  assert.ok(results.occupation!.some((h) => h.ref === 'occupation:onet:29-1141.00'), JSON.stringify(results.occupation!.map((h) => h.title)));
});

Quality('should put a hospital industry (NAICS 622) among the industries nearest "hospital"', async () => {
  const { results } = await space.near('hospital', { types: ['industry'], k: 10 });
  assert.ok(results.industry!.some((h) => h.ref.startsWith('industry:naics:622')), JSON.stringify(results.industry!.map((h) => h.ref)));
});

Quality('should find programming skills among the ESCO skills nearest Software Developers', async () => {
  const { results } = await space.near('occupation:onet:15-1252.00', { types: ['skill'], k: 30 });
  const esco = results.skill!.filter((h) => h.ref.startsWith('skill:esco:')).slice(0, 10);
  assert.ok(esco.some((h) => /program|software|coding/i.test(h.title)), JSON.stringify(esco.map((h) => h.title)));
});

Quality('should keep each type apart: an occupation\'s nearest occupations score above its nearest firms', async () => {
  const { results } = await space.near('occupation:onet:51-4041.00', { types: ['occupation', 'firm'], k: 1 });
  assert.ok(results.occupation![0].score > results.firm![0].score);
});

// The documented checks of the manufacturing-healthcare axis (README): in each pair the first
// sits nearer Health Care, with 95% bootstrap intervals that do not overlap.
const AXIS_CHECKS = [
  ['occupation:onet:29-1141.00', 'occupation:onet:51-4041.00'], // Registered Nurses / Machinists
  ['occupation:onet:29-1051.00', 'occupation:onet:51-4121.00'], // Pharmacists / Welders, Cutters, Solderers, and Brazers
  ['occupation:onet:31-1121.00', 'occupation:onet:51-2092.00'], // Home Health Aides / Team Assemblers
  ['industry:naics:622110', 'industry:naics:336111'], // General Medical and Surgical Hospitals / Automobile Manufacturing
  ['industry:naics:621111', 'industry:naics:331110'], // Offices of Physicians / Iron and Steel Mills
  ['skill:onet:2.C.5.a', 'skill:onet:2.C.3.a'], // Medicine and Dentistry / Computers and Electronics
];

Quality('should order the documented pairs along the manufacturing-healthcare axis, intervals apart', async () => {
  const r = await space.axis(['industry:naics:31-33'], ['industry:naics:62'], { types: [], positions: AXIS_CHECKS.flat(), bootstrap: 100 });
  const at = new Map(r.positions.map((p) => [p.ref, p]));
  for (const [health, manufacturing] of AXIS_CHECKS) {
    const h = at.get(health)!, m = at.get(manufacturing)!;
    assert.ok(h.score > 0 && m.score < 0 && h.low! > m.high!, `${h.title} ${h.score} [${h.low}, ${h.high}] vs ${m.title} ${m.score} [${m.low}, ${m.high}]`);
  }
});

// Evaluation only: Felten, Raj & Seamans' AIOE (SOC 2010) and AIIE (4-digit NAICS), from ../shared.
const FELTEN = join(import.meta.dirname, '..', '..', 'shared', 'data', 'validation', 'felten_aioe', 'AIOE_DataAppendix.xlsx');

const hasFelten = existsSync(FELTEN);
if (!hasFelten) console.log(`  skipped the Felten et al. comparison: ${FELTEN} is not here (it is in the project's shared data only)`);
(hasFelten ? Quality : Quality.skip)('should correlate AI exposure with Felten et al. AIOE and AIIE, both constructions of the direction (evaluation only)', async () => {
  for (const construction of ['skills', 'texts'] as const) {
    const exposure = await aiExposure(space, { construction });
    const occupations = await compareExposure(space, exposure, FELTEN, { key: 'SOC Code', value: 'AIOE', sheet: 1 });
    const industries = await compareExposure(space, exposure, FELTEN, { key: 'NAICS', value: 'AIIE', sheet: 2 });
    console.log(`  ${construction}: AIOE n ${occupations.direct.n}, Spearman ${occupations.direct.spearman.toFixed(3)}, Pearson ${occupations.direct.pearson.toFixed(3)}; AIIE n ${industries.direct.n}, Spearman ${industries.direct.spearman.toFixed(3)}`);
    assert.ok(occupations.matched >= 770 && industries.matched >= 240, `${occupations.matched} occupations, ${industries.matched} industries matched`);
    assert.ok(occupations.direct.spearman > 0.3 && industries.direct.spearman > 0.15, `${construction}: ${JSON.stringify([occupations.direct, industries.direct])}`);
  }
});

Quality.run();
