/** `laborspace axis`: entities ranked along the axis between two sets of poles, with bootstrap intervals. */
import { type Command, InvalidArgumentError } from 'commander';

import { type AxisHit, type AxisResult, NAMED_AXES, splitPoles } from '../../analysis/analyses.js';
import { ENTITY_TYPES, type EntityType } from '../../store/index.js';
import { type Cli, print } from '../context.js';
import { nonNegativeInt, positiveInt, typeList } from '../options.js';
import { newTable, numberCell } from '../table.js';

export function registerAxis(program: Command, cli: Cli): void {
  program
    .command('axis')
    .description('entities ranked along the axis from one set of poles to another: cos(x, mean(to) - mean(from)), with bootstrap intervals')
    .argument('[name]', `a named axis: ${Object.keys(NAMED_AXES).join(', ')}`)
    .option('--from <poles>', 'comma-separated references or quoted texts; a NAICS sector (industry:naics:31-33) stands for all its codes')
    .option('--to <poles>', 'the other end, as --from')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--top <n>', 'entities listed at each end per type', positiveInt, 10)
    .option('--show <refs>', 'comma-separated references whose positions are always reported')
    .option('--bootstrap <n>', 'resamples of the pole members for the intervals (0: none)', nonNegativeInt, 200)
    .action(async (name: string | undefined, opts: { from?: string; to?: string; types?: EntityType[]; top: number; show?: string; bootstrap: number }) => {
      const { json } = cli.globals();
      let from: string[], to: string[];
      if (name) {
        const named = NAMED_AXES[name];
        if (!named) throw new InvalidArgumentError(`unknown axis "${name}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
        if (opts.from || opts.to) throw new InvalidArgumentError('give a named axis or --from and --to, not both');
        ({ from, to } = named);
      } else {
        if (!opts.from || !opts.to) throw new InvalidArgumentError('give a named axis, or both --from and --to');
        [from, to] = [splitPoles(opts.from), splitPoles(opts.to)];
      }
      await cli.withSpace(async (space) => {
        const result = await space.axis(from, to, { types: opts.types, top: opts.top, bootstrap: opts.bootstrap, positions: opts.show ? splitPoles(opts.show) : [] });
        print(json, result, () => formatAxis(result));
      });
    });
}

function axisTable(title: string, hits: readonly AxisHit[]): string {
  const table = newTable(['score', '95% interval', 'reference', 'title']);
  for (const h of hits) table.push([numberCell(h.score), h.low === undefined ? '' : `${numberCell(h.low)} .. ${numberCell(h.high)}`, h.ref, h.title]);
  return `${title}\n${table.toString()}`;
}

function formatAxis(r: AxisResult): string {
  const { from, to, fromMembers, toMembers, formula } = r.axis;
  const parts = [`Axis from ${from.join(', ')} (${fromMembers} members) to ${to.join(', ')} (${toMembers} members); score = ${formula}, higher is nearer the "to" end.`];
  if (r.positions.length) parts.push(axisTable('Positions:', r.positions));
  for (const type of Object.keys(r.results) as (keyof AxisResult['results'])[]) {
    parts.push(axisTable(`${type}, nearest the "to" end:`, r.results[type]!), axisTable(`${type}, nearest the "from" end:`, r.fromEnd[type]!));
  }
  return parts.join('\n\n');
}
