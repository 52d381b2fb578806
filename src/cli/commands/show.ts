/** `laborspace show REF`: an entity, its text and its relations. */
import type { Command } from 'commander';

import { type ShowResult, showEntity } from '../../store/entity-view.js';
import { type Cli, print } from '../context.js';
import { positiveInt } from '../options.js';

export function registerShow(program: Command, cli: Cli): void {
  program
    .command('show')
    .description('an entity, its text and its relations')
    .argument('<ref>', 'TYPE:SOURCE:CODE, or TYPE:CODE where unambiguous')
    .option('--limit <n>', 'relations shown per kind', positiveInt, 10)
    .action(async (ref: string, opts: { limit: number }) => {
      const { json } = cli.globals();
      await cli.withStore(async (store) => {
        const result = showEntity(store, ref, opts.limit);
        print(json, result, () => formatShow(result, (r) => store.entity(r)?.title));
      });
    });
}

function summarizeExtra(extra: Record<string, unknown>): string[] {
  return Object.entries(extra).map(([k, v]) => {
    if (Array.isArray(v)) return v.length ? `${k}: ${v.length} (${v.slice(0, 3).join('; ')}${v.length > 3 ? '; ...' : ''})` : `${k}: none`;
    return `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`;
  });
}

function formatShow(result: ShowResult, titles: (ref: string) => string | undefined): string {
  const { entity: e } = result;
  const lines = [`${e.ref}  ${e.title}`, `type ${e.type}, source ${e.source}, code ${e.code}${e.version ? `, version ${e.version}` : ''}`, '', e.text, ''];
  lines.push(...summarizeExtra(e.extra));
  for (const g of result.relations) {
    lines.push('', `${g.direction === 'out' ? '->' : '<-'} ${g.kind} (${g.total})`);
    for (const r of g.shown) {
      const other = g.direction === 'out' ? r.target : r.source;
      lines.push(`   ${r.weight.toFixed(3).padStart(8)}  ${other}  ${titles(other) ?? ''}`);
    }
    if (g.total > g.shown.length) lines.push(`   ... ${g.total - g.shown.length} more`);
  }
  return lines.join('\n');
}
