/** Quality checks of the base space built from the bundled data. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { LaborSpace } from '../src/space.js';
import { BUNDLED_HOME, buildBundledHome } from './bundled-home.js';

const Quality = suite('base space on the bundled data');
let space: LaborSpace;

Quality.before(async () => {
  await buildBundledHome();
  space = await LaborSpace.open(BUNDLED_HOME);
});
Quality.after(async () => space.close());

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

Quality.run();
