/**
 * A SentenceEncoder on a worker thread. onnxruntime-node's session.run() holds the thread that
 * calls it for the whole batch (~50 ms for 32 texts on 2 cores), so a server encoding on its main
 * thread answers nothing else meanwhile; here the main thread only posts texts and receives
 * vectors. An aborted signal rejects at once and stops the worker's loop at its next batch.
 */
import { setPriority } from 'node:os';
import { isMainThread, parentPort, type Worker, workerData } from 'node:worker_threads';

import { answerJobs, errorFromWire, errorToWire, exitWhenAsked, startModuleWorker, stopWorker, type WireError } from '../util/worker.js';
import { type EncodeResult, EncoderError, type EncoderOptions, SentenceEncoder } from './sentence-encoder.js';

interface Job {
  id: number;
  texts?: string[];
  cancel?: true;
}

type Reply =
  | { ready: { hash: string; maxTokens: number } }
  | { id?: number; error: WireError }
  | { id: number; result: EncodeResult };

const ROLE = 'laborspace-encoder';
const ENCODER_NICENESS = 10;

export class EncoderThread {
  /** The model folder. */
  readonly dir: string;
  readonly hash: string;
  readonly maxTokens: number;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: EncodeResult) => void; reject: (e: unknown) => void }>();
  private next = 0;
  private closing = false;

  private constructor(dir: string, worker: Worker, ready: { hash: string; maxTokens: number }) {
    this.dir = dir;
    this.worker = worker;
    this.hash = ready.hash;
    this.maxTokens = ready.maxTokens;
    worker.on('message', (reply: Reply) => {
      if (!('id' in reply) || reply.id === undefined) return;
      const job = this.pending.get(reply.id);
      if (!job) return; // cancelled: already rejected
      this.settle(reply.id);
      if ('result' in reply) job.resolve(reply.result);
      else job.reject(toError(reply.error));
    });
    worker.on('error', (e) => this.failPending(e));
    // Closed (or stopped by its own failure) with texts in flight: they fail, never hang.
    worker.on('exit', (code) => {
      this.failPending(new Error(this.closing ? 'the encoder was closed before it encoded these texts' : `the encoder thread stopped (exit code ${code}) before it encoded these texts`));
    });
    worker.unref(); // held only while a job is pending (see encode)
  }

  /** Loads the model in a new worker; its errors (a missing or bad model) reject here. */
  static async load(dir: string, options: EncoderOptions = {}): Promise<EncoderThread> {
    const worker = startWorker({ role: ROLE, dir, options });
    const ready = await new Promise<{ hash: string; maxTokens: number }>((resolve, reject) => {
      worker.once('message', (reply: Reply) => ('ready' in reply ? resolve(reply.ready) : reject(toError((reply as { error: WireError }).error))));
      worker.once('error', reject);
    }).catch(async (e) => {
      await stopWorker(worker);
      throw e;
    });
    return new EncoderThread(dir, worker, ready);
  }

  /** As SentenceEncoder.encode, on the worker. */
  encode(texts: readonly string[], signal?: AbortSignal): Promise<EncodeResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.worker.threadId === -1) return Promise.reject(new Error(this.closing ? 'the encoder is closed' : 'the encoder thread has stopped'));
    const id = this.next++;
    return new Promise<EncodeResult>((resolve, reject) => {
      const onAbort = () => {
        this.settle(id);
        this.worker.postMessage({ id, cancel: true } satisfies Job);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (r) => (signal?.removeEventListener('abort', onAbort), resolve(r)),
        reject: (e) => (signal?.removeEventListener('abort', onAbort), reject(e)),
      });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ id, texts: [...texts] } satisfies Job);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await stopWorker(this.worker);
  }

  private failPending(e: unknown): void {
    for (const [id, job] of this.pending) {
      this.settle(id);
      job.reject(e);
    }
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }
}

const toError = (wire: WireError) => errorFromWire(wire, { EncoderError });

/** This module as the worker's code. */
function startWorker(data: unknown): Worker {
  // onnxruntime parses the process's command line when it starts, recursively: ~290 bytes of stack
  // per byte, past a worker's default 4 MB stack from ~14 KB. 16 MB keeps the CLI's cap (16 KiB) safe.
  return startModuleWorker(import.meta.url, data, { stackSizeMb: 16 });
}

async function serve(dir: string, options: EncoderOptions): Promise<void> {
  const port = parentPort!;
  // A lower priority for this thread and the onnxruntime threads it starts (Linux: per thread,
  // inherited), so that a long encoding gives way to the queries on the main thread and libuv's.
  try {
    setPriority(0, ENCODER_NICENESS);
  } catch {
    // not permitted here: stay at the process's priority
  }
  const stopListening = exitWhenAsked(port);
  let encoder: SentenceEncoder;
  try {
    encoder = await SentenceEncoder.load(dir, options);
  } catch (e) {
    stopListening(); // nothing is left to do: the thread ends by itself
    port.postMessage({ error: errorToWire(e) } satisfies Reply);
    return;
  }
  port.postMessage({ ready: { hash: encoder.hash, maxTokens: encoder.maxTokens } } satisfies Reply);
  answerJobs<Job>(
    port,
    async (job, signal) => {
      const result = await encoder.encode(job.texts!, undefined, undefined, signal);
      return { result, transfer: [result.vectors.buffer as ArrayBuffer] };
    },
  );
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) {
  const { dir, options } = workerData as { dir: string; options: EncoderOptions };
  await serve(dir, options);
}
