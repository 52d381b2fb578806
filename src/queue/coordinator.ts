/**
 * The coordinator of a distributed scoring run: it reads the input as the single process does
 * (`inputRows`: the same bad-row handling), cuts the good rows into chunks that travel inside
 * BullMQ jobs, keeps at most `inFlight` of them queued or running (so memory is bounded whatever the
 * input's size), and writes the workers' results in input order through the same writer as the
 * single process.
 *
 * A run's id is a hash of the input's bytes, the options and the space's model hash, and chunk i is
 * the job `RUN-i`: a rerun of the same command (after a crash of the coordinator, or of Redis)
 * finds the chunks already scored and queues only the rest. The jobs are removed once the output
 * is written.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';

import { Job, Queue, QueueEvents } from 'bullmq';

import { axisDirections, chunkOptions, chunksOf, formattedCount, inputRows, outputFormat, scoreSummary, type ScoreOptions, type ScoreSummary, writeScores } from '../analysis/score.js';
import { IngestReport } from '../data/report.js';
import { SpaceError } from '../errors.js';
import type { LaborSpace } from '../space.js';
import { checkRedis, type ChunkJob, type ChunkResult, redisAddress, SCORE_QUEUE } from './connection.js';

export interface QueueProgress {
  rows: number;
  rowsPerSecond: number;
  /** Workers that have returned a chunk of this run. */
  workers: number;
  /** Attempts beyond the first, over the chunks done (a dead worker's chunk taken again, say). */
  retries: number;
}

export interface QueueScoreOptions extends Omit<ScoreOptions, 'onProgress'> {
  /** redis://HOST:PORT/DB */
  queue: string;
  /** Good rows per job: a multiple of `batchSize` (default: the first multiple from 1,024). */
  chunkRows?: number;
  /** Chunks queued or running at once (default 32). */
  inFlight?: number;
  /** Attempts per chunk before the run fails (default 3). */
  attempts?: number;
  /** How long Redis may take to answer at the start, or be unreachable later, before the run stops (default 5 s). */
  redisTimeoutSeconds?: number;
  onProgress?: (progress: QueueProgress) => void;
}

export interface QueueScoreSummary extends ScoreSummary, Omit<QueueProgress, 'rowsPerSecond'> {
  run: string;
  chunks: number;
  /** Chunks found already scored, from an earlier run of the same command. */
  reused: number;
}

/** The run's id: the input's bytes, the options that change its output (its format too), and the model. */
async function runId(input: string, options: object, modelHash: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const bytes of createReadStream(input)) hash.update(bytes as Buffer);
  hash.update(JSON.stringify(options)).update(modelHash);
  return hash.digest('hex').slice(0, 24);
}

/** What the watch needs of a BullMQ queue or queue-events: its Redis client, and its errors. */
export interface WatchedRedis {
  getBackend(): { client: Promise<{ status: string }> };
  on(event: 'error', listener: (e: Error) => void): unknown;
}

/**
 * Rejects once a client's connection has not been ready for `seconds`, checked four times a second.
 * It reads the connection's state, not the timing of the errors: BullMQ's clients retry with
 * growing delays (1 s, then up to 20 s), so after a few seconds errors come too rarely to tell a
 * Redis that stays away from one that came back, and a run waited on it forever. The check's timer
 * also keeps the process alive until `stop` (ioredis's reconnection timer does not): else a run
 * waiting on a Redis gone away would just exit.
 */
export function redisWatch(url: string, seconds: number, watched: WatchedRedis[]) {
  let fail!: (e: Error) => void;
  const gone = new Promise<never>((_, reject) => (fail = reject));
  gone.catch(() => {}); // awaited through the races below; never unhandled
  let cause = 'no answer';
  const clients: { status: string }[] = [];
  for (const w of watched) {
    w.on('error', (e) => (cause = e.message || (e as { code?: string }).code || cause));
    w.getBackend().client.then((c) => clients.push(c), () => {});
  }
  let downSince: number | undefined;
  const check = setInterval(() => {
    if (!clients.some((c) => c.status !== 'ready')) {
      downSince = undefined;
      return;
    }
    downSince ??= Date.now();
    if (Date.now() - downSince >= seconds * 1000)
      fail(new SpaceError('BAD_OPTION', `Redis at ${url} went away (${cause}) and did not come back within ${seconds} s: the chunks scored so far are kept in Redis; run the same command again to resume`));
  }, 250);
  return { guard: <T>(work: Promise<T>) => Promise.race([work, gone]), stop: () => clearInterval(check) };
}

/**
 * Rows per job: whole batches, so that the workers embed the single process's batches (which
 * rows share a batch changes the int8 model's vectors: the output would not be the same).
 */
export function chunkRowsOf(chunkRows: number | undefined, batchSize: number): number {
  if (chunkRows === undefined) return batchSize * Math.ceil(1024 / batchSize);
  if (chunkRows % batchSize === 0) return chunkRows;
  const fits = [Math.floor(chunkRows / batchSize), Math.ceil(chunkRows / batchSize)].filter((n) => n > 0).map((n) => (n * batchSize).toLocaleString('en-US'));
  throw new SpaceError('BAD_OPTION', `--chunk-rows ${chunkRows} is not a multiple of --batch-size ${batchSize}: a chunk must hold whole batches for the output to be the single process's (${fits.join(' or ')} would do)`);
}

export async function scoreFileQueued(space: LaborSpace, input: string, output: string, options: QueueScoreOptions): Promise<QueueScoreSummary> {
  const format = outputFormat(input, output);
  const chunk = chunkOptions(options);
  const chunkRows = chunkRowsOf(options.chunkRows, chunk.batchSize);
  const inFlight = options.inFlight ?? 32;
  const attempts = options.attempts ?? 3;
  const redisSeconds = options.redisTimeoutSeconds ?? 5;
  await checkRedis(options.queue, redisSeconds); // before reading the whole input for the run's id
  await axisDirections(space, chunk.axes); // a bad axis fails here, not in every worker
  const run = await runId(input, { textColumn: options.textColumn, idColumn: options.idColumn, onError: options.onError, chunk, chunkRows, format }, space.modelHash);
  const connection = redisAddress(options.queue);
  const queue = new Queue<ChunkJob, ChunkResult>(SCORE_QUEUE, { connection });
  const events = new QueueEvents(SCORE_QUEUE, { connection });
  // Each chunk in flight listens for the queue's closing.
  queue.setMaxListeners(2 * inFlight + 10);
  const watch = redisWatch(options.queue, redisSeconds, [queue, events]);
  const report = new IngestReport();
  const workers = new Set<string>();
  let retries = 0, reused = 0, chunks = 0;
  const { guard } = watch;
  let failed = false;
  try {
    await guard(Promise.all([queue.waitUntilReady(), events.waitUntilReady()]));
    /** Chunk i's scored rows: taken from Redis if an earlier run scored it, else queued and awaited. */
    const submit = async (i: number, rows: ChunkJob['rows']): Promise<ChunkResult> => {
      const jobId = `${run}-${i}`;
      const lines = `lines ${rows[0].line}-${rows[rows.length - 1].line} of ${basename(input)}`;
      let job = await Job.fromId<ChunkJob, ChunkResult>(queue, jobId);
      const state = await job?.getState();
      if (job && state === 'completed') {
        reused++;
        return job.returnvalue;
      }
      if (job && state === 'failed') await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      job ??= await queue.add('score', { run, chunk: i, modelId: space.modelId, modelHash: space.modelHash, options: chunk, format, rows }, { jobId, attempts, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: false, removeOnFail: false });
      try {
        return await job.waitUntilFinished(events);
      } catch (e) {
        const made = (await Job.fromId(queue, jobId))?.attemptsMade ?? attempts;
        throw new SpaceError('BAD_QUERY', `chunk ${i} (${lines}) failed after ${made} attempt${made === 1 ? '' : 's'}: ${(e as Error).message}`);
      }
    };
    const summary = await writeScores(output, format, chunk, async (write) => {
      const started = Date.now();
      let rows = 0;
      const pending: Promise<ChunkResult>[] = [];
      const writeFirst = async () => {
        const result = await guard(pending.shift()!);
        await write(result.rows);
        rows += formattedCount(result.rows);
        workers.add(result.worker);
        retries += Math.max(0, result.attempt - 1);
        options.onProgress?.({ rows, rowsPerSecond: rows / Math.max(0.001, (Date.now() - started) / 1000), workers: workers.size, retries });
      };
      for await (const rowsOfChunk of chunksOf(inputRows(input, options, report), chunkRows)) {
        const submitted = submit(chunks++, rowsOfChunk);
        submitted.catch(() => {}); // awaited in order by writeFirst
        pending.push(submitted);
        if (pending.length >= inFlight) await writeFirst();
      }
      while (pending.length) await writeFirst();
      return scoreSummary(rows, report, started);
    });
    // The output is whole: the run's jobs are no longer needed.
    await guard(Promise.all(Array.from({ length: chunks }, (_, i) => queue.remove(`${run}-${i}`))));
    return { ...summary, run, chunks, reused, workers: workers.size, retries };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // A Redis gone away never answers a close, and the process would end with the error unsaid:
    // after a failure the close has 2 s, then the connections are dropped.
    const closed = Promise.allSettled([queue.close(), events.close()]);
    const late = (ms: number) => new Promise<boolean>((r) => setTimeout(() => r(true), ms));
    if (failed && (await Promise.race([closed.then(() => false), late(2000)]))) await Promise.race([Promise.allSettled([queue.disconnect(), events.disconnect()]), late(1000)]);
    else await closed;
    watch.stop();
  }
}
