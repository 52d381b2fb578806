/** `laborspace near`: the nearest entities of each type to a reference or a text. */
import { readFileSync } from 'node:fs';

import { type Command, InvalidArgumentError } from 'commander';

import type { NearResult } from '../../space.js';
import { ENTITY_TYPES, type EntityType } from '../../store/index.js';
import { type Cli, print } from '../context.js';
import { positiveInt, typeList } from '../options.js';

export function registerNear(program: Command, cli: Cli): void {
  program
    .command('near')
    .description('nearest entities of each type to a reference or a text')
    .argument('[query]', 'TYPE:SOURCE:CODE, TYPE:CODE, or text (quote it to force text); at most 5,000 characters')
    .option('--query-file <path>', 'read the query from a file (- for standard input) instead')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--k <n>', 'results per type', positiveInt, 10)
    .option('--exact', 'scan every vector exactly instead of using HNSW indices')
    .action(async (argument: string | undefined, opts: { queryFile?: string; types?: EntityType[]; k: number; exact?: boolean }) => {
      const { json } = cli.globals();
      const query = nearQuery(argument, opts.queryFile);
      await cli.withSpace(async (space) => {
        const result = await space.near(query, { types: opts.types, k: opts.k, exact: opts.exact });
        print(json, result, () => formatNearest(`Nearest to ${result.ref ?? JSON.stringify(result.query)}:`, result.results));
      });
    });
}

/** The query: the argument, or the text of --query-file (- for standard input). */
function nearQuery(query: string | undefined, file: string | undefined): string {
  if (query !== undefined && file !== undefined) throw new InvalidArgumentError('give the query as an argument or with --query-file, not both');
  if (file === undefined) {
    if (query === undefined) throw new InvalidArgumentError('near needs a query: an argument, or --query-file PATH (- for standard input)');
    return query;
  }
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`--query-file ${file}: ${(e as Error).message}`);
  }
}

/** A heading, then each type's hits: score, reference, title (also `arith`'s answer). */
export function formatNearest(heading: string, results: NearResult['results']): string {
  const lines = [heading];
  for (const [type, hits] of Object.entries(results)) {
    lines.push('', `${type}:`);
    for (const h of hits) lines.push(`  ${h.score.toFixed(3)}  ${h.ref}  ${h.title}`);
  }
  return lines.join('\n');
}
