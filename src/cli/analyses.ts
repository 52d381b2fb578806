/** Text and CSV output of the analysis commands (arith, axis, shock). */
import { stringify } from 'csv-stringify/sync';

import type { ArithResult, AxisHit, AxisResult, ShockResult } from '../analysis/analyses.js';
import type { ExposureComparison } from '../analysis/exposure.js';
import { newTable } from './table.js';

const num = (v: number | undefined) => (v === undefined ? '' : v.toFixed(3));

export function formatArith(r: ArithResult): string {
  const lines = [`Nearest to ${r.expression}:`];
  for (const [type, hits] of Object.entries(r.results)) {
    lines.push('', `${type}:`);
    for (const h of hits) lines.push(`  ${h.score.toFixed(3)}  ${h.ref}  ${h.title}`);
  }
  return lines.join('\n');
}

function axisTable(title: string, hits: readonly AxisHit[]): string {
  const table = newTable(['score', '95% interval', 'reference', 'title']);
  for (const h of hits) table.push([num(h.score), h.low === undefined ? '' : `${num(h.low)} .. ${num(h.high)}`, h.ref, h.title]);
  return `${title}\n${table.toString()}`;
}

export function formatAxis(r: AxisResult): string {
  const { from, to, fromMembers, toMembers, formula } = r.axis;
  const parts = [`Axis from ${from.join(', ')} (${fromMembers} members) to ${to.join(', ')} (${toMembers} members); score = ${formula}, higher is nearer the "to" end.`];
  if (r.positions.length) parts.push(axisTable('Positions:', r.positions));
  for (const type of Object.keys(r.results) as (keyof AxisResult['results'])[]) {
    parts.push(axisTable(`${type}, nearest the "to" end:`, r.results[type]!), axisTable(`${type}, nearest the "from" end:`, r.fromEnd[type]!));
  }
  return parts.join('\n\n');
}

export function formatShock(r: ShockResult): string {
  const parts = [`Exposure to ${r.direction}: direct = cosine with the direction; rippled = carried along skills -> occupations -> industries -> firms.`];
  for (const [type, hits] of Object.entries(r.results)) {
    const table = newTable(['rippled', 'direct', 'reference', 'title']);
    for (const h of hits) table.push([num(h.rippled), num(h.direct), h.ref, h.title]);
    parts.push(`${type}:\n${table.toString()}`);
  }
  return parts.join('\n\n');
}

/** Every entity: type, ref, title, direct and rippled exposure. */
export function shockCsv(r: ShockResult): string {
  return stringify(r.all.map((h) => [h.type, h.ref, h.title, h.direct, h.rippled ?? '']), { header: true, columns: ['type', 'ref', 'title', 'direct', 'rippled'] });
}

export function formatComparison(c: ExposureComparison): string {
  const table = newTable(['exposure', 'n', 'Pearson', 'Spearman']);
  table.push(['direct', c.direct.n, num(c.direct.pearson), num(c.direct.spearman)], ['rippled', c.rippled.n, num(c.rippled.pearson), num(c.rippled.spearman)]);
  const missing = c.unmatched.length ? `; no ${c.kind} for ${c.unmatched.length}: ${c.unmatched.slice(0, 8).join(', ')}${c.unmatched.length > 8 ? ', ...' : ''}` : '';
  return `Against ${c.file}: ${c.matched} of ${c.rows} codes matched to ${c.kind} entities${missing}.\n${table.toString()}`;
}
