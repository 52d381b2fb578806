/** `laborspace index`: the per-type nearest-neighbour indices, built where missing, stale or corrupt. */
import { type Command, Option } from 'commander';

import { indexStep } from '../../build.js';
import type { IndexManifest } from '../../index/space-index.js';
import { type Cli, print } from '../context.js';
import { newTable } from '../table.js';

export function registerIndex(program: Command, cli: Cli): void {
  program
    .command('index')
    .description('build the per-type nearest-neighbour indices (only those missing, stale or corrupt)')
    .addOption(
      new Option('--method <method>', 'auto: the fastest reaching recall@10 0.99; or exact, int8, hnsw everywhere').choices(['auto', 'exact', 'int8', 'hnsw']).default('auto'),
    )
    .action(async (opts: { method: 'auto' | 'exact' | 'int8' | 'hnsw' }) => {
      const { home, json } = cli.globals();
      await cli.withStore(async (store) => {
        const manifest = indexStep(store, home, { onNote: cli.note, method: opts.method });
        print(json, manifest, () => formatIndex(manifest));
      });
    });
}

export function formatIndex(m: IndexManifest): string {
  const table = newTable(['type', 'vectors', 'search', 'ef / candidates', 'recall@10', 'exact ms', 'int8 ms', 'hnsw ms']);
  const ms = (v?: number) => v?.toFixed(3) ?? '';
  for (const [type, info] of Object.entries(m.types))
    table.push([type, info.count, info.method, info.ef ?? info.candidates ?? '', info.recall.toFixed(3), ms(info.exactMs), ms(info.int8Ms), ms(info.hnswMs)]);
  return `Indices of ${m.modelId}:\n${table.toString()}`;
}
