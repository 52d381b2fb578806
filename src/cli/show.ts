/** `laborspace show REF`: an entity, its text and its relations. */
import type { ShowResult } from '../store/entity-view.js';

function summarizeExtra(extra: Record<string, unknown>): string[] {
  return Object.entries(extra).map(([k, v]) => {
    if (Array.isArray(v)) return v.length ? `${k}: ${v.length} (${v.slice(0, 3).join('; ')}${v.length > 3 ? '; ...' : ''})` : `${k}: none`;
    return `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`;
  });
}

export function formatShow(result: ShowResult, titles: (ref: string) => string | undefined): string {
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
