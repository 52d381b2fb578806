/** `laborspace worker`: scores the chunks of distributed `score` runs taken from a Redis queue. */
import type { Command } from 'commander';

import { setThreads } from '../../native.js';
import { LaborSpace } from '../../space.js';
import type { Cli } from '../context.js';
import { MAX_STALL_SECONDS, startWorker } from '../../queue/worker.js';
import { intUpTo, positiveInt } from '../options.js';

export function registerWorker(program: Command, cli: Cli): void {
  program
    .command('worker')
    .description('score chunks of `score --queue` runs from Redis, until SIGTERM (which finishes the chunks in hand first)')
    .requiredOption('--queue <url>', 'the Redis of the runs: redis://HOST:PORT/DB')
    .option('--concurrency <n>', 'chunks scored at once', positiveInt, 1)
    .option('--threads <n>', 'threads of the encoder and the native scans (default: all cores)', positiveInt)
    .option('--stall-seconds <n>', "seconds after which a dead worker's chunk is given to another", intUpTo(MAX_STALL_SECONDS), 30)
    .option('--log-chunks', 'print a line when a chunk is taken and when it is scored')
    .action(async (opts: { queue: string; concurrency: number; threads?: number; stallSeconds: number; logChunks?: boolean }) => {
      const { home } = cli.globals();
      const { note } = cli;
      if (opts.threads) setThreads(opts.threads);
      const space = await LaborSpace.open(home, { onNote: note, threads: opts.threads });
      let chunks = 0, rows = 0, lastError = '';
      try {
        const worker = await startWorker(space, opts.queue, {
          concurrency: opts.concurrency,
          stallSeconds: opts.stallSeconds,
          onTake: (job) => {
            if (opts.logChunks) note(`run ${job.run}: chunk ${job.chunk} taken (${job.rows.length} rows)`);
          },
          onChunk: (job, ms) => {
            chunks++;
            rows += job.rows.length;
            if (opts.logChunks) note(`run ${job.run}: chunk ${job.chunk} scored in ${ms} ms`);
          },
          onRefused: (_, message) => note(`refused: ${message}`),
          // Once per kind of error: ioredis repeats it on every reconnection attempt.
          onError: (e) => {
            if (e.message !== lastError) note(`Redis at ${opts.queue}: ${e.message || e.name} (retrying)`);
            lastError = e.message;
          },
        });
        note(`worker ${worker.name} on ${opts.queue}: space ${space.modelId} (model ${space.modelHash.slice(0, 12)}), ${opts.concurrency} chunk(s) at a time`);
        await new Promise<void>((resolve) => {
          for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
        });
        note(`worker ${worker.name}: stopping after the chunks in hand`);
        await worker.close();
        note(`worker ${worker.name}: ${chunks} chunks, ${rows} rows scored`);
      } finally {
        await space.close();
      }
    });
}
