/** `laborspace score`: bulk scoring of a file's texts, in this process or on the workers of a queue (`--queue`). */
import { existsSync } from 'node:fs';

import { type Command, InvalidArgumentError, Option } from 'commander';

import { NAMED_AXES } from '../../analysis/analyses.js';
import { scoreFile, type ScoreSummary } from '../../analysis/score.js';
import { type QueueScoreOptions, type QueueScoreSummary, scoreFileQueued } from '../../queue/coordinator.js';
import type { LaborSpace } from '../../space.js';
import { type Cli, print } from '../context.js';
import { nonNegativeInt, positiveInt } from '../options.js';
import { progress } from '../progress.js';

export function registerScore(program: Command, cli: Cli): void {
  program
    .command('score')
    .description('bulk scoring: each text of a CSV or JSONL file with its nearest occupation and industry, top skills and axis positions, streamed')
    .requiredOption('--input <file>', 'a .csv, .tsv (optionally .gz), .jsonl or .parquet file')
    .requiredOption('--text-column <column>', 'the column (or JSONL key) holding the text')
    .option('--id-column <column>', 'a column copied to the output to identify rows (default: the line number)')
    .option('--out <file>', 'the scored rows, .csv, .jsonl or .parquet (default: INPUT.scored.csv)')
    .option('--skills <n>', 'skills listed per row', nonNegativeInt, 5)
    .option('--axes <names>', `named axes to place each text on (default: ${Object.keys(NAMED_AXES).join(',')}; "none" for none)`)
    .addOption(new Option('--on-error <mode>', 'a malformed row or empty text: skip it (reported) or fail').choices(['skip', 'fail']).default('skip'))
    .option('--batch-size <n>', 'texts embedded together', positiveInt, 256)
    .option('--queue <url>', 'score on the workers of this Redis (redis://HOST:PORT/DB; see `laborspace worker`) instead of in this process')
    .option('--chunk-rows <n>', 'with --queue: rows per job, a multiple of --batch-size (default: the first multiple from 1024)', positiveInt)
    .option('--in-flight <n>', 'with --queue: jobs queued or running at once', positiveInt, 32)
    .action(async (opts: { input: string; textColumn: string; idColumn?: string; out?: string; skills: number; axes?: string; onError: 'skip' | 'fail'; batchSize: number; queue?: string; chunkRows?: number; inFlight: number }) => {
      const { json } = cli.globals();
      const names = opts.axes === 'none' ? [] : (opts.axes ?? Object.keys(NAMED_AXES).join(',')).split(',').map((n) => n.trim()).filter(Boolean);
      for (const n of names) if (!NAMED_AXES[n]) throw new InvalidArgumentError(`unknown axis "${n}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
      if (!existsSync(opts.input)) throw new InvalidArgumentError(`--input ${opts.input}: no such file`);
      const out = opts.out ?? `${opts.input.replace(/\.(csv|tsv|jsonl|parquet)(\.gz)?$/i, '')}.scored.csv`;
      const axes = Object.fromEntries(names.map((n) => [n, NAMED_AXES[n]]));
      if (opts.queue) {
        const { queue, chunkRows, inFlight } = opts;
        return cli.withSpace(async (space) => {
          const summary = await scoreQueued(space, opts.input, out, { textColumn: opts.textColumn, idColumn: opts.idColumn, skills: opts.skills, axes, onError: opts.onError, batchSize: opts.batchSize, queue, chunkRows, inFlight }, json);
          print(json, { out, ...summary }, () => formatScore(summary, out));
        });
      }
      const bar = progress('score', json);
      try {
        await cli.withSpace(async (space) => {
          const summary = await scoreFile(space, opts.input, out, {
            textColumn: opts.textColumn,
            idColumn: opts.idColumn,
            skills: opts.skills,
            axes,
            onError: opts.onError,
            batchSize: opts.batchSize,
            onProgress: (rows, rate) => bar.update(rows, rows, `rows, ${Math.round(rate)}/s`),
          });
          bar.stop();
          print(json, { out, ...summary }, () => formatScore(summary, out));
        });
      } finally {
        bar.stop();
      }
    });
}

function formatScore(summary: ScoreSummary & Partial<QueueScoreSummary>, out: string): string {
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
async function scoreQueued(space: LaborSpace, input: string, out: string, options: Omit<QueueScoreOptions, 'onProgress'>, json: boolean | undefined): Promise<QueueScoreSummary> {
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
