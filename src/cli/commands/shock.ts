/** `laborspace shock`: each entity's exposure to a direction and its ripple along the relations. */
import { type Command, InvalidArgumentError } from 'commander';
import { stringify } from 'csv-stringify/sync';

import type { ShockResult } from '../../analysis/analyses.js';
import { ENTITY_TYPES, type EntityType } from '../../store/index.js';
import { writeFileAtomic } from '../../util/output-file.js';
import { type Cli, print } from '../context.js';
import { positiveInt, typeList } from '../options.js';
import { newTable, numberCell } from '../table.js';

export function registerShock(program: Command, cli: Cli): void {
  program
    .command('shock')
    .description("each entity's exposure to a shock direction (cosine) and its ripple: skills -> occupations -> industries -> firms")
    .requiredOption('--direction <expr>', 'a vector expression, as for arith (e.g. \'"artificial intelligence" + "machine learning"\')')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--top <n>', 'entities listed per type', positiveInt, 10)
    .option('--out <file>', 'every entity of the chosen types to a .csv or .json file')
    .action(async (opts: { direction: string; types?: EntityType[]; top: number; out?: string }) => {
      const { json } = cli.globals();
      checkOut(opts.out);
      await cli.withSpace(async (space) => {
        const result = await space.shock(opts.direction, { types: opts.types, top: opts.top });
        if (writeShockOut(result, opts.out)) cli.note(`${result.all.length} entities written to ${opts.out}`);
        const { all: _all, ...shown } = result;
        print(json, shown, () => formatShock(result));
      });
    });
}

/** --out of `shock` and `exposure`: a .csv or .json file. */
export function checkOut(out: string | undefined): void {
  if (out && !/\.(csv|json)$/i.test(out)) throw new InvalidArgumentError(`--out ${out}: the file must end in .csv or .json`);
}

/** Every entity's exposure to --out, as CSV or JSON by the file's extension; returns the count. */
export function writeShockOut(result: ShockResult, out: string | undefined): number {
  if (!out) return 0;
  writeFileAtomic(out, /\.json$/i.test(out) ? JSON.stringify(result.all) : shockCsv(result));
  return result.all.length;
}

export function formatShock(r: ShockResult): string {
  const parts = [`Exposure to ${r.direction}: direct = cosine with the direction; rippled = carried along skills -> occupations -> industries -> firms.`];
  for (const [type, hits] of Object.entries(r.results)) {
    const table = newTable(['rippled', 'direct', 'reference', 'title']);
    for (const h of hits) table.push([numberCell(h.rippled), numberCell(h.direct), h.ref, h.title]);
    parts.push(`${type}:\n${table.toString()}`);
  }
  return parts.join('\n\n');
}

/** Every entity: type, ref, title, direct and rippled exposure. */
function shockCsv(r: ShockResult): string {
  return stringify(r.all.map((h) => [h.type, h.ref, h.title, h.direct, h.rippled ?? '']), { header: true, columns: ['type', 'ref', 'title', 'direct', 'rippled'] });
}
