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

/** Base and tuned metrics side by side. */
function formatMetrics(base: SpaceMetrics, tuned: SpaceMetrics): string[] {
  const table = newTable(['relation kind (held out)', 'anchors', 'MRR base', 'MRR tuned', 'R@10 base', 'R@10 tuned']);
  base.kinds.forEach((b, i) => {
    const t = tuned.kinds[i];
    table.push([b.kind, b.anchors, fixed(b.mrr), fixed(t.mrr), fixed(b.recallAt10), fixed(t.recallAt10)]);
  });
  return [table.toString(), `type clustering ${fixed(base.typeClustering)} -> ${fixed(tuned.typeClustering)}; NAICS sector purity ${fixed(base.sectorPurity)} -> ${fixed(tuned.sectorPurity)}`];
}

export function formatTrain(s: TrainSummary): string {
  const resumed = s.resumedFrom ? `, resumed after step ${s.resumedFrom}` : '';
  if (s.tune === 'full')
    return [`Training run ${s.runId}: the whole encoder fine-tuned, ${s.stepsRun} steps${resumed}, ${s.seconds.toFixed(0)} s.`, ...formatMetrics(s.base, s.tuned)].join('\n');
  const adapter = s.config.adapterRank ? `, with a rank-${s.config.adapterRank} adapter${s.config.trainDense ? '' : ' (dense layer frozen)'}` : '';
  return [
    `Training run ${s.runId} (head only)${adapter}: best validation MRR at step ${s.bestStep} of ${s.stepsRun}${s.stoppedEarly ? ' (stopped early)' : ''}${resumed}.`,
    ...formatMetrics(s.base, s.tuned),
  ].join('\n');
}

export function formatEvaluation(e: RunEvaluation): string {
  return [`Training run ${e.runId}, evaluated now over ${e.entities.toLocaleString('en-US')} entities:`, ...formatMetrics(e.base, e.tuned)].join('\n');
}

export function formatBuild(s: BuildSummary): string {
  return [formatIngestSummary(s.ingest), formatEncode(s.encode), ...(s.train ? [formatTrain(s.train)] : []), formatIndex(s.index), `Built in ${s.seconds.toFixed(1)} s.`].join('\n\n');
}
