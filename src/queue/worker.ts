/**
 * A queue worker: takes chunks of a scoring run from Redis (BullMQ) and scores them with the
 * space it opened once, through the same `scoreRows` as the single-process `score`, so a row gets
 * the same output wherever it is scored. A chunk for another model is refused, never scored: a run
 * must not mix two spaces. A worker that dies holding a chunk loses its lock, and BullMQ's
 * stalled-job check hands the chunk to another worker.
 */
import { hostname } from 'node:os';

import { UnrecoverableError, Worker } from 'bullmq';

import { axisDirections, formatRows, scoreRows } from '../analysis/score.js';
import { SpaceError } from '../errors.js';
import type { LaborSpace } from '../space.js';
import { checkRedis, type ChunkJob, type ChunkResult, redisAddress, SCORE_QUEUE } from './connection.js';

export interface WorkerOptions {
  /** Chunks scored at once (default 1). */
  concurrency?: number;
  /** Seconds after which a silent worker's chunk goes to another (default 30). */
  stallSeconds?: number;
  /** A chunk taken, before it is scored. */
  onTake?: (job: ChunkJob) => void;
  /** A chunk scored, in `ms`. */
  onChunk?: (job: ChunkJob, ms: number) => void;
  onRefused?: (job: ChunkJob, message: string) => void;
  /** Redis errors (the connection is retried until Redis is back; the worker waits meanwhile). */
  onError?: (error: Error) => void;
}

export interface ScoreWorker {
  /** The worker's name in progress and errors: host and process. */
  readonly name: string;
  /** Finishes the chunks in hand, takes no more, and disconnects. */
  close(): Promise<void>;
}

const short = (hash: string) => hash.slice(0, 12);

/** A day: BullMQ's lock and stall timers are Node timers, which fire at once past 24.8 days. */
export const MAX_STALL_SECONDS = 86_400;

export async function startWorker(space: LaborSpace, queueUrl: string, options: WorkerOptions = {}): Promise<ScoreWorker> {
  const stallSeconds = options.stallSeconds ?? 30;
  if (!Number.isInteger(stallSeconds) || stallSeconds < 1 || stallSeconds > MAX_STALL_SECONDS)
    throw new SpaceError('BAD_OPTION', `stallSeconds must be an integer from 1 to ${MAX_STALL_SECONDS.toLocaleString('en-US')}, got ${stallSeconds}`);
  // At the start, an address where no Redis answers is an error; later the worker waits for it.
  await checkRedis(queueUrl, 5);
  const name = `${hostname()}:${process.pid}`;
  const stall = stallSeconds * 1000;
  // Directions per set of axes: computed once, not per chunk.
  const directions = new Map<string, Promise<Float32Array>>();
  const worker = new Worker<ChunkJob, ChunkResult>(
    SCORE_QUEUE,
    async (job) => {
      const chunk = job.data;
      if (chunk.modelHash !== space.modelHash) {
        const message = `worker ${name} has the space ${space.modelId} (model ${short(space.modelHash)}) but run ${chunk.run} was started with ${chunk.modelId} (model ${short(chunk.modelHash)}): start workers on a home with the coordinator's space`;
        options.onRefused?.(chunk, message);
        throw new UnrecoverableError(message);
      }
      options.onTake?.(chunk);
      const started = Date.now();
      const key = JSON.stringify(chunk.options.axes);
      if (!directions.has(key)) directions.set(key, axisDirections(space, chunk.options.axes));
      const rows = await scoreRows(space, chunk.rows, chunk.options, await directions.get(key)!);
      options.onChunk?.(chunk, Date.now() - started);
      return { worker: name, attempt: job.attemptsStarted, rows: formatRows(chunk.format, chunk.options, rows) };
    },
    {
      connection: { ...redisAddress(queueUrl), maxRetriesPerRequest: null },
      concurrency: options.concurrency ?? 1,
      lockDuration: stall,
      stalledInterval: stall,
      // A chunk whose workers keep dying (a row that crashes the process) fails after three.
      maxStalledCount: 3,
    },
  );
  worker.on('error', (e) => options.onError?.(e));
  await worker.waitUntilReady();
  return { name, close: () => worker.close() };
}
