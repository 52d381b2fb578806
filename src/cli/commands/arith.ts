/** `laborspace arith`: the nearest entities of each type to a vector expression. */
import type { Command } from 'commander';

import { ENTITY_TYPES, type EntityType } from '../../store/index.js';
import { type Cli, print } from '../context.js';
import { positiveInt, typeList } from '../options.js';
import { formatNearest } from './near.js';

export function registerArith(program: Command, cli: Cli): void {
  program
    .command('arith')
    .description('nearest entities of each type to a vector expression of references, quoted texts and numbers')
    .argument('<expr>', 'e.g. \'firm:wiki:apple - industry:naics:3341 + industry:naics:6221\' or \'0.5*"artificial intelligence" + skill:onet:2.A.1.a\' (spaces around a minus after a reference)')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--k <n>', 'results per type', positiveInt, 10)
    .option('--include-operands', "keep the expression's own references in the results")
    .action(async (expr: string, opts: { types?: EntityType[]; k: number; includeOperands?: boolean }) => {
      const { json } = cli.globals();
      await cli.withSpace(async (space) => {
        const result = await space.arith(expr, { types: opts.types, k: opts.k, includeOperands: opts.includeOperands });
        print(json, result, () => formatNearest(`Nearest to ${result.expression}:`, result.results));
      });
    });
}
