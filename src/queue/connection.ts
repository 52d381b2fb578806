/**
 * The Redis behind a scoring queue: a `redis://HOST:PORT/DB` address parsed into ioredis options,
 * the queue's name, and what travels in each job (the rows themselves: workers need no shared disk).
 */
import { Redis, ReplyError } from 'ioredis';

import type { ChunkOptions, FormattedRows, InputRow, OutputFormat } from '../analysis/score.js';
import { SpaceError } from '../errors.js';

/** One queue for every run: a run's chunks are told apart by their job ids (`RUN-CHUNK`). */
export const SCORE_QUEUE = 'laborspace-score';

/** A chunk of a run: the rows to score, how, for which model, and the output's format. */
export interface ChunkJob {
  run: string;
  chunk: number;
  modelId: string;
  modelHash: string;
  options: ChunkOptions;
  format: OutputFormat;
  rows: InputRow[];
}

/**
 * A scored chunk: who scored it, on which attempt, and its rows in order, formatted for the output
 * (the coordinator writes them as they come: it does not parse and rewrite each row).
 */
export interface ChunkResult {
  worker: string;
  attempt: number;
  rows: FormattedRows;
}

export interface RedisAddress {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls?: Record<string, never>;
}

/** Parses `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (`rediss://` for TLS). */
export function redisAddress(url: string): RedisAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SpaceError('BAD_OPTION', `--queue ${url}: not an address; expected redis://HOST:PORT/DB`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new SpaceError('BAD_OPTION', `--queue ${url}: expected redis://HOST:PORT/DB (or rediss:// for TLS), not ${parsed.protocol}//`);
  const db = parsed.pathname.replace(/^\//, '') || '0';
  if (!/^\d+$/.test(db)) throw new SpaceError('BAD_OPTION', `--queue ${url}: the database must be a number, got "${db}"`);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    db: Number(db),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * Connects to `url` once, without retrying, and fails naming it if no Redis answers within about
 * `seconds` or the Redis there refuses the connection (a password, a database that is not there).
 * Run before a coordinator or worker starts: BullMQ's clients would retry an address that is wrong
 * forever, saying nothing.
 */
export async function checkRedis(url: string, seconds: number): Promise<void> {
  const client = new Redis({ ...redisAddress(url), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: seconds * 1000, commandTimeout: seconds * 1000 });
  // The cause comes as an error event (connect itself rejects with "Connection is closed."), and a
  // database out of range only as one: the connection stands and answers.
  let cause: Error | undefined;
  client.on('error', (e: Error) => (cause ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    cause ??= e as Error;
  } finally {
    // Once ended, disconnect would arm a 2 s timer for the closing of a socket already closed.
    if (client.status !== 'end') client.disconnect();
  }
  if (cause) throw new SpaceError('BAD_OPTION', `--queue ${url}: ${cause instanceof ReplyError ? 'the Redis there refused the connection' : 'no Redis answered'} (${cause.message})`);
}
