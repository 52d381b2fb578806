/**
 * The fine-tuned space against the pretrained one on the checks that fine-tuning must not lose
 * (evaluation only; nothing here feeds training): AI exposure against Felten, Raj & Seamans' AIOE
 * (occupations, SOC 2010) and AIIE (4-digit NAICS), for both constructions of the AI direction;
 * the documented manufacturing-healthcare pairs (README); type clustering from `laborspace eval`.
 * Needs a built home and ../shared/data/validation (the project's shared data).
 * Usage: npm run bench:validation -- --home DIR
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import Table from 'cli-table3';

import { aiExposure, compareExposure } from '../src/analysis/exposure.js';
import { LaborSpace } from '../src/space.js';
import { evaluateRun, lastTrainingRun, runTune } from '../src/train/evaluate-run.js';
import { describeMachine, machineLine } from './machine.js';

const here = dirname(fileURLToPath(import.meta.url));
const FELTEN = join(here, '..', '..', 'shared', 'data', 'validation', 'felten_aioe', 'AIOE_DataAppendix.xlsx');
const home = process.argv[process.argv.indexOf('--home') + 1];
if (!process.argv.includes('--home') || !home) {
  console.error('usage: npm run bench:validation -- --home DIR');
  process.exit(1);
}
if (!existsSync(FELTEN)) {
  console.error(`${FELTEN} is not here: the Felten et al. files are in the project's shared data only`);
  process.exit(1);
}

// In each pair the first should sit nearer Health Care than the second (README, test/quality.test.ts).
const AXIS_PAIRS = [
  ['occupation:onet:29-1141.00', 'occupation:onet:51-4041.00'],
  ['occupation:onet:29-1051.00', 'occupation:onet:51-4121.00'],
  ['occupation:onet:31-1121.00', 'occupation:onet:51-2092.00'],
  ['industry:naics:622110', 'industry:naics:336111'],
  ['industry:naics:621111', 'industry:naics:331110'],
  ['skill:onet:2.C.5.a', 'skill:onet:2.C.3.a'],
];

const rows: Record<string, unknown>[] = [];
const table = new Table({ head: ['space', 'AIOE Spearman (skills)', 'AIOE (texts)', 'AIIE Spearman (skills)', 'AIIE (texts)', 'axis pairs apart', 'mean axis gap'] });
for (const model of ['base', 'tuned'] as const) {
  const space = await LaborSpace.open(home, { model });
  try {
    const cells: Record<string, number> = {};
    for (const construction of ['skills', 'texts'] as const) {
      const exposure = await aiExposure(space, { construction });
      cells[`aioe_${construction}`] = (await compareExposure(space, exposure, FELTEN, { key: 'SOC Code', value: 'AIOE', sheet: 1 })).direct.spearman;
      cells[`aiie_${construction}`] = (await compareExposure(space, exposure, FELTEN, { key: 'NAICS', value: 'AIIE', sheet: 2 })).direct.spearman;
    }
    const axis = await space.axis(['industry:naics:31-33'], ['industry:naics:62'], { types: [], positions: AXIS_PAIRS.flat(), bootstrap: 200 });
    const at = new Map(axis.positions.map((p) => [p.ref, p]));
    const apart = AXIS_PAIRS.filter(([h, m]) => at.get(h)!.score > 0 && at.get(m)!.score < 0 && at.get(h)!.low! > at.get(m)!.high!).length;
    const gap = AXIS_PAIRS.reduce((s, [h, m]) => s + at.get(h)!.score - at.get(m)!.score, 0) / AXIS_PAIRS.length;
    const label = model === 'base' ? 'pretrained' : `fine-tuned (${space.modelId})`;
    table.push([label, cells.aioe_skills.toFixed(3), cells.aioe_texts.toFixed(3), cells.aiie_skills.toFixed(3), cells.aiie_texts.toFixed(3), `${apart} of ${AXIS_PAIRS.length}`, gap.toFixed(3)]);
    rows.push({ model, ...cells, axisPairsApart: apart, meanAxisGap: gap });
  } finally {
    await space.close();
  }
}
const space = await LaborSpace.open(home);
const run = lastTrainingRun(space.store);
const evaluation = run ? evaluateRun(space.store, run) : undefined;
await space.close();
console.log(`\nValidation of ${home}${run ? ` (training run ${run.id}, ${runTune(run)})` : ''}`);
console.log(machineLine(describeMachine()));
console.log(table.toString());
if (evaluation) console.log(`type clustering ${evaluation.base.typeClustering.toFixed(3)} -> ${evaluation.tuned.typeClustering.toFixed(3)}`);
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'validation.json'), JSON.stringify({ machine: describeMachine(), home, run: run?.id, rows, typeClustering: evaluation && [evaluation.base.typeClustering, evaluation.tuned.typeClustering] }, null, 2));
