/** `laborspace exposure ai`: exposure to a built-in direction, optionally correlated with outside scores. */
import { type Command, InvalidArgumentError, Option } from 'commander';

import { AI_DIRECTION_SKILLS, AI_DIRECTION_TEXTS, type AiConstruction, aiExposure, compareExposure, type ExposureComparison } from '../../analysis/exposure.js';
import type { EntityType } from '../../store/index.js';
import { sameFile } from '../../util/output-file.js';
import { type Cli, print } from '../context.js';
import { positiveInt, typeList } from '../options.js';
import { newTable, numberCell } from '../table.js';
import { checkOut, formatShock, writeShockOut } from './shock.js';

function socVintage(value: string): 2010 | 2018 {
  if (value !== '2010' && value !== '2018') throw new InvalidArgumentError('must be 2010 or 2018');
  return Number(value) as 2010 | 2018;
}

export function registerExposure(program: Command, cli: Cli): void {
  program
    .command('exposure')
    .description('exposure of occupations and industries to a built-in direction (ai), optionally correlated with a score file')
    .argument('<direction>', `built-in direction: ai (from ${AI_DIRECTION_SKILLS.length} ESCO AI skills, see src/analysis/exposure.ts)`)
    .addOption(new Option('--construction <how>', `skills: mean of the ESCO AI skills minus mean of all ESCO skills; texts: the sum of ${AI_DIRECTION_TEXTS.length} descriptions of AI capabilities`).choices(['skills', 'texts']).default('skills'))
    .option('--types <list>', 'comma-separated types (default: occupation,industry)', typeList)
    .option('--top <n>', 'entities listed per type', positiveInt, 10)
    .option('--compare <file>', 'a CSV, TSV or .xlsx file of outside scores by SOC or NAICS code')
    .option('--key <column>', 'the column of codes in --compare')
    .option('--value <column>', 'the column of scores in --compare')
    .option('--sheet <n>', 'worksheet of an .xlsx --compare file (1 = the first)', positiveInt, 1)
    .option('--soc-vintage <year>', 'SOC vintage of the codes: 2010 or 2018', socVintage, 2010)
    .option('--out <file>', 'every entity of the chosen types to a .csv or .json file')
    .action(async (direction: string, opts: { types?: EntityType[]; top: number; construction: AiConstruction; compare?: string; key?: string; value?: string; sheet: number; socVintage: 2010 | 2018; out?: string }) => {
      const { json } = cli.globals();
      if (direction !== 'ai') throw new InvalidArgumentError(`unknown direction "${direction}" (built in: ai; for any other use \`laborspace shock --direction EXPR\`)`);
      if (opts.compare && (!opts.key || !opts.value)) throw new InvalidArgumentError('--compare needs --key and --value');
      if (opts.compare && opts.out && sameFile(opts.compare, opts.out)) throw new InvalidArgumentError(`--out ${opts.out} is the --compare file: write the exposure to another file`);
      checkOut(opts.out);
      await cli.withSpace(async (space) => {
        const types = opts.types ?? ['occupation', 'industry'];
        const result = await aiExposure(space, { types, top: opts.top, construction: opts.construction });
        if (writeShockOut(result, opts.out)) cli.note(`${result.all.length} entities written to ${opts.out}`);
        const comparison = opts.compare
          ? await compareExposure(space, result, opts.compare, { key: opts.key!, value: opts.value!, sheet: opts.sheet - 1, socVintage: opts.socVintage })
          : undefined;
        const { all: _all, ...shown } = result;
        const summary = comparison ? { ...shown, comparison: { ...comparison, matches: undefined } } : shown;
        print(json, summary, () => [formatShock(result), ...(comparison ? [formatComparison(comparison)] : [])].join('\n\n'));
      });
    });
}

function formatComparison(c: ExposureComparison): string {
  const table = newTable(['exposure', 'n', 'Pearson', 'Spearman']);
  table.push(['direct', c.direct.n, numberCell(c.direct.pearson), numberCell(c.direct.spearman)], ['rippled', c.rippled.n, numberCell(c.rippled.pearson), numberCell(c.rippled.spearman)]);
  const missing = c.unmatched.length ? `; no ${c.kind} for ${c.unmatched.length}: ${c.unmatched.slice(0, 8).join(', ')}${c.unmatched.length > 8 ? ', ...' : ''}` : '';
  return `Against ${c.file}: ${c.matched} of ${c.rows} codes matched to ${c.kind} entities${missing}.\n${table.toString()}`;
}
