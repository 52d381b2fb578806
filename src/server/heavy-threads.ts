/**
 * The server's heavy requests (axis, shock, score, embed) on worker threads, each with its own
 * LaborSpace opened read-only on the server's home and model. Their JavaScript (the bootstrap's
 * resamples, the ripple, a thousand scored rows) used to run on the event loop: with eight of them
 * queued, the loop was busy nearly all the time and reference queries waited 20-60 ms for a turn.
 * Now the loop only posts a request and receives its answer's body, already written as JSON bytes:
 * cloning a thousand scored rows onto the loop and writing them there took it 15-25 ms per answer
 * (35 ms for 256 embedded vectors), time every reference query that arrived meanwhile waited out.
 * The threads run at niceness 10, as the encoder does, and keep their kernels on themselves (not
 * on libuv's pool, which serves the reference queries' scans at the process's priority). A
 * request's signal cancels it on its thread (the work stops at its next step); a thread that dies
 * fails its requests with an internal error and is replaced.
 */
import { setPriority } from 'node:os';
import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';

import type { ModelChoice } from '../active-model.js';
import { type AxisOptions, prepareShock, type ShockOptions } from '../analysis/analyses.js';
import { ExprError } from '../analysis/expr.js';
import { scoreTexts } from '../analysis/score.js';
import { EncoderError } from '../encoder/sentence-encoder.js';
import { SpaceError } from '../errors.js';
import { keepKernelsOnThisThread } from '../native.js';
import { LaborSpace } from '../space.js';
import { StoreError } from '../store/index.js';
import { answerJobs, errorFromWire, errorToWire, exitWhenAsked, startModuleWorker, stopWorker, type WireError } from '../util/worker.js';

export type HeavyRequest =
  | { route: 'axis'; from: readonly string[]; to: readonly string[]; options: Omit<AxisOptions, 'signal'> }
  | { route: 'shock'; direction: string; options: Omit<ShockOptions, 'signal' | 'all'> }
  | { route: 'embed'; texts: readonly string[] }
  | { route: 'score'; texts: readonly string[]; skills: number; axes: Record<string, { from: readonly string[]; to: readonly string[] }> };

interface Job {
  id: number;
  request?: HeavyRequest;
  cancel?: true;
}

type Reply = { ready: true } | { id?: number; error: WireError } | { id: number; result: Uint8Array };

interface ThreadData {
  role: typeof ROLE;
  home: string;
  model: ModelChoice;
  threads?: number;
  modelId: string;
  modelHash: string;
}

const ROLE = 'laborspace-heavy';
const NICENESS = 10;
/** The errors the server answers with a status of their own: rebuilt as the same classes. */
const KNOWN_ERRORS: Record<string, { prototype: Error }> = { SpaceError, ExprError, EncoderError, StoreError };

const fromWire = (wire: WireError) => errorFromWire(wire, KNOWN_ERRORS);

interface Thread {
  worker: Worker;
  /** Settles when the thread's space is open (or failed to open). */
  ready: Promise<void>;
  /** Why it could not open its space: it is not replaced, and its requests fail with this. */
  failed?: Error;
  pending: Map<number, { resolve: (body: Uint8Array) => void; reject: (e: unknown) => void }>;
}

export interface HeavyThreadsHealth {
  threads: number;
  ready: number;
  restarts: number;
}

export class HeavyThreads {
  private readonly space: LaborSpace;
  private readonly threads: Thread[] = [];
  private next = 0;
  private restarts = 0;
  private readyCount = 0;
  private closing = false;

  /** Starts `count` threads; each opens its space in the background (the first requests wait for it). */
  constructor(space: LaborSpace, count: number) {
    this.space = space;
    for (let i = 0; i < count; i++) this.threads.push(this.spawn(i));
  }

  health(): HeavyThreadsHealth {
    return { threads: this.threads.length, ready: this.readyCount, restarts: this.restarts };
  }

  /** Runs a request on the least busy thread and gives its answer's body as JSON; the signal cancels it there. */
  async run(request: HeavyRequest, signal: AbortSignal): Promise<Uint8Array> {
    signal.throwIfAborted();
    const thread = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    await untilSettledOrAborted(thread.ready, signal);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        thread.pending.delete(id);
        thread.worker.postMessage({ id, cancel: true } satisfies Job);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = () => signal.removeEventListener('abort', onAbort);
      thread.pending.set(id, { resolve: (r) => (done(), resolve(r)), reject: (e) => (done(), reject(e)) });
      thread.worker.postMessage({ id, request } satisfies Job);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((t) => stopWorker(t.worker)));
  }

  private spawn(slot: number): Thread {
    const { space } = this;
    const data: ThreadData = { role: ROLE, home: space.home, ...space.openedWith, modelId: space.modelId, modelHash: space.modelHash };
    const worker = startModuleWorker(import.meta.url, data);
    const thread: Thread = { worker, ready: Promise.resolve(), pending: new Map() };
    let opened = false;
    thread.ready = new Promise<void>((resolve, reject) => {
      worker.once('message', (reply: Reply) => {
        if ('ready' in reply) {
          opened = true;
          this.readyCount++;
          resolve();
        } else reject((thread.failed = fromWire((reply as { error: WireError }).error)));
      });
      worker.once('exit', (code) => {
        if (!opened && !thread.failed) reject((thread.failed = new Error(`an analysis thread stopped while it opened its space (exit code ${code})`)));
      });
    });
    thread.ready.catch(() => undefined); // seen by run()
    worker.on('message', (reply: Reply) => {
      if (!('id' in reply) || reply.id === undefined) return;
      const job = thread.pending.get(reply.id);
      if (!job) return; // cancelled: already rejected
      thread.pending.delete(reply.id);
      if ('result' in reply) job.resolve(reply.result);
      else job.reject(fromWire(reply.error));
    });
    worker.on('error', () => undefined); // its exit follows, and fails what it was running
    worker.on('exit', (code) => {
      const why = this.closing ? 'the analysis threads were closed before this request finished' : `the analysis thread running this request stopped (exit code ${code})`;
      for (const job of thread.pending.values()) job.reject(new Error(why));
      thread.pending.clear();
      if (this.closing || !opened) return;
      this.readyCount--;
      this.restarts++;
      this.threads[slot] = this.spawn(slot);
    });
    // The server's socket keeps the process alive, not these. After the listeners: adding one
    // for 'message' refs the worker's port again.
    worker.unref();
    return thread;
  }
}

/** Waits for `ready`, rejecting with the signal's reason as soon as it fires. */
function untilSettledOrAborted(ready: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    ready.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export const isBlank = (text: string) => text.trim() === '';

/** Writes answers as UTF-8 into buffers of their own (not Buffer's shared pool), which can be moved to the loop. */
const utf8 = new TextEncoder();

/** A request's answer, as the server sends it. */
async function handle(space: LaborSpace, request: HeavyRequest, signal: AbortSignal): Promise<object> {
  switch (request.route) {
    case 'axis':
      return space.axis(request.from, request.to, { ...request.options, signal });
    case 'shock': {
      const { all: _all, ...result } = await space.shock(request.direction, { ...request.options, all: false, signal });
      return result;
    }
    case 'embed': {
      const vectors = await space.embed(request.texts, signal);
      const dim = space.dim;
      return { model: space.modelId, dim, vectors: request.texts.map((_, i) => Array.from(vectors.subarray(i * dim, (i + 1) * dim))) };
    }
    case 'score': {
      // A blank text is an error of its own row; the others are scored.
      const { texts } = request;
      const scored = texts.flatMap((t, i) => (isBlank(t) ? [] : [i]));
      const rows = await scoreTexts(space, scored.map((i) => texts[i]), { skills: request.skills, axes: request.axes, signal });
      const rowOf = new Map(scored.map((index, r) => [index, rows[r]]));
      return {
        rows: texts.map((_, index) => {
          const row = rowOf.get(index);
          if (!row) return { index, error: `body/texts/${index} is blank: there is nothing to score` };
          const { id: _id, ...rest } = row;
          return { index, ...rest };
        }),
      };
    }
  }
}

async function serve(data: ThreadData): Promise<void> {
  const port = parentPort!;
  try {
    setPriority(0, NICENESS); // this thread only (Linux), and the threads it starts
  } catch {
    // not permitted here: stay at the process's priority
  }
  keepKernelsOnThisThread();
  const opening = LaborSpace.open(data.home, { model: data.model, threads: data.threads, readonly: true });
  // Asked to stop (even while opening): the space's encoder thread is stopped first, between batches.
  const stopListening = exitWhenAsked(port, () => opening.then((s) => s.close(), () => undefined));
  let space: LaborSpace | undefined;
  try {
    space = await opening;
    if (space.modelId !== data.modelId || space.modelHash !== data.modelHash)
      throw new SpaceError('NOT_BUILT', `the space of ${data.home} changed since the server opened it: restart the server to serve it`);
    prepareShock(space);
  } catch (e) {
    await space?.close();
    stopListening(); // nothing is left to do: the thread ends by itself
    port.postMessage({ error: errorToWire(e) } satisfies Reply);
    return;
  }
  port.postMessage({ ready: true } satisfies Reply);
  answerJobs<Job>(
    port,
    async (job, signal) => {
      const body = utf8.encode(JSON.stringify(await handle(space, job.request!, signal)));
      return { result: body, transfer: [body.buffer as ArrayBuffer] };
    },
  );
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) await serve(workerData as ThreadData);
