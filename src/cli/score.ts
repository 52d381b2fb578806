/** `laborspace score`'s answer, and its distributed form (`--queue`): the coordinator of a run. */
import type { ScoreSummary } from '../analysis/score.js';
import { type QueueScoreOptions, type QueueScoreSummary, scoreFileQueued } from '../queue/coordinator.js';
import type { LaborSpace } from '../space.js';
import { progress } from './progress.js';

export function formatScore(summary: ScoreSummary & Partial<QueueScoreSummary>, out: string): string {
  const queued = summary.run
    ? [`run ${summary.run}: ${summary.chunks} chunks (${summary.reused} from an earlier run), ${summary.workers} workers, ${summary.retries} retries`]
    : [];
  return [
    `${summary.rows} rows scored to ${out} in ${summary.seconds.toFixed(1)} s (${Math.round(summary.rowsPerSecond)} rows/s).`,
    ...queued,
    ...summary.skipped.slice(0, 10).map((s) => `skipped line ${s.line ?? '?'}: ${s.reason}`),
    ...(summary.skipped.length > 10 ? [`... and ${summary.skipped.length - 10} more skipped`] : []),
  ].join('\n');
}

/** Scores through the queue's workers with one progress bar: rows/s, workers seen, retries. */
export async function scoreQueued(space: LaborSpace, input: string, out: string, options: Omit<QueueScoreOptions, 'onProgress'>, json: boolean | undefined): Promise<QueueScoreSummary> {
  const bar = progress('score', json);
  try {
    return await scoreFileQueued(space, input, out, {
      ...options,
      onProgress: (p) => bar.update(p.rows, p.rows, `rows, ${Math.round(p.rowsPerSecond)}/s, ${p.workers} worker${p.workers === 1 ? '' : 's'}, ${p.retries} retries`),
    });
  } finally {
    bar.stop();
  }
}
