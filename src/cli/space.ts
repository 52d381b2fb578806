/** `encode`, `index`, `near`, `build` and `export`: formatting of the space commands' results. */
import type { BuildSummary } from '../build.js';
import type { EncodeSummary } from '../encoder/encode-entities.js';
import type { IndexManifest } from '../index/space-index.js';
import type { NearResult } from '../space.js';
import type { SpaceMetrics } from '../train/evaluate.js';
import type { RunEvaluation } from '../train/evaluate-run.js';
import type { TrainSummary } from '../train/run.js';
import { formatIngestSummary } from './ingest.js';
import { newTable } from './table.js';

export function formatEncode(s: EncodeSummary): string {
  const rate = s.encoded && s.seconds ? `, ${(s.encoded / s.seconds).toFixed(0)} texts/s` : '';
  return `Encoded ${s.entities} entities with ${s.modelId} in ${s.seconds.toFixed(1)} s: ${s.encoded} texts encoded${rate}, ${s.cached} from the cache, ${s.truncated} truncated to the model's limit.`;
}

export function formatIndex(m: IndexManifest): string {
  const table = newTable(['type', 'vectors', 'search', 'ef / candidates', 'recall@10', 'exact ms', 'int8 ms', 'hnsw ms']);
  const ms = (v?: number) => v?.toFixed(3) ?? '';
  for (const [type, info] of Object.entries(m.types))
    table.push([type, info.count, info.method, info.ef ?? info.candidates ?? '', info.recall.toFixed(3), ms(info.exactMs), ms(info.int8Ms), ms(info.hnswMs)]);
  return `Indices of ${m.modelId}:\n${table.toString()}`;
}

export function formatNear(r: NearResult): string {
  const lines = [`Nearest to ${r.ref ?? JSON.stringify(r.query)}:`];
  for (const [type, hits] of Object.entries(r.results)) {
    lines.push('', `${type}:`);
    for (const h of hits) lines.push(`  ${h.score.toFixed(3)}  ${h.ref}  ${h.title}`);
  }
  return lines.join('\n');
}

const fixed = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : 'n/a');

/** Base and tuned metrics side by side (tuned: one column per way of tuning, labelled). */
function formatMetrics(base: SpaceMetrics, tuned: SpaceMetrics | [string, SpaceMetrics][]): string[] {
  const columns: [string, SpaceMetrics][] = Array.isArray(tuned) ? tuned : [['tuned', tuned]];
  const table = newTable(['relation kind (held out)', 'anchors', 'MRR base', ...columns.map(([l]) => `MRR ${l}`), 'R@10 base', ...columns.map(([l]) => `R@10 ${l}`)]);
  base.kinds.forEach((b, i) => {
    const at = (m: SpaceMetrics) => m.kinds.find((k) => k.kind === b.kind) ?? m.kinds[i];
    table.push([b.kind, b.anchors, fixed(b.mrr), ...columns.map(([, m]) => fixed(at(m).mrr)), fixed(b.recallAt10), ...columns.map(([, m]) => fixed(at(m).recallAt10))]);
  });
  const mean = (m: SpaceMetrics) => fixed(m.kinds.reduce((s, k) => s + k.mrr, 0) / Math.max(1, m.kinds.length));
  const arrow = (f: (m: SpaceMetrics) => string) => [f(base), ...columns.map(([l, m]) => `${f(m)} (${l})`)].join(' -> ');
  return [
    table.toString(),
    `mean MRR ${arrow(mean)}`,
    `type clustering ${arrow((m) => fixed(m.typeClustering))}; NAICS sector purity ${arrow((m) => fixed(m.sectorPurity))}`,
  ];
}

export function formatTrain(s: TrainSummary): string {
  const resumed = s.resumedFrom ? `, resumed after step ${s.resumedFrom}` : '';
  if (s.tune === 'full')
    return [
      `Training run ${s.runId}: the whole encoder fine-tuned, ${s.stepsRun} steps${resumed}${s.headSteps ? `, then the head alone on its states (best at step ${s.headSteps})` : ''}, ${s.seconds.toFixed(0)} s.`,
      ...formatMetrics(s.base, s.tuned),
    ].join('\n');
  const adapter = s.config.adapterRank ? `, with a rank-${s.config.adapterRank} adapter${s.config.trainDense ? '' : ' (dense layer frozen)'}` : '';
  return [
    `Training run ${s.runId} (head only)${adapter}: best validation MRR at step ${s.bestStep} of ${s.stepsRun}${s.stoppedEarly ? ' (stopped early)' : ''}${resumed}.`,
    ...formatMetrics(s.base, s.tuned),
  ].join('\n');
}

export function formatEvaluation(e: RunEvaluation): string {
  const columns: [string, SpaceMetrics][] = [[e.tune, e.tuned]];
  if (e.other) columns.push([`${e.other.tune} (run ${e.other.runId}, as recorded)`, e.other.tuned]);
  columns.sort(([a], [b]) => (a.startsWith('head') ? -1 : 1) - (b.startsWith('head') ? -1 : 1));
  return [`Training run ${e.runId} (${e.tune}), evaluated now over ${e.entities.toLocaleString('en-US')} entities:`, ...formatMetrics(e.base, columns)].join('\n');
}

export function formatBuild(s: BuildSummary): string {
  return [formatIngestSummary(s.ingest), formatEncode(s.encode), ...(s.train ? [formatTrain(s.train)] : []), formatIndex(s.index), `Built in ${s.seconds.toFixed(1)} s.`].join('\n\n');
}
