/** Worker threads running one of this package's modules. */
import { type MessagePort, Worker } from 'node:worker_threads';

/** What stopWorker posts; a worker that called exitWhenAsked exits on it. */
const STOP = { laborspaceStop: true } as const;
/** How long a worker asked to stop may take (an onnxruntime batch takes well under a second). */
const STOP_GRACE_MS = 5000;

/**
 * A worker running the module at `moduleUrl` (its import.meta.url) with `data` as workerData:
 * compiled JavaScript as it is, TypeScript (tests, tsx) through tsx's loader.
 */
export function startModuleWorker(moduleUrl: string, data: unknown, options: { stackSizeMb?: number } = {}): Worker {
  const settings = { workerData: data, ...(options.stackSizeMb ? { resourceLimits: { stackSizeMb: options.stackSizeMb } } : {}) };
  if (!moduleUrl.endsWith('.ts')) return new Worker(new URL(moduleUrl), settings);
  // Node 20 does not apply --import loaders to a worker's entry module: register tsx first.
  return new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`, { ...settings, eval: true });
}

/**
 * Stops a worker at its next turn of the event loop, never in the middle of a native call.
 * Worker.terminate() stops a thread wherever it is, and one stopped inside onnxruntime's
 * session.run (which holds its thread for a whole batch) ends the whole process: onnxruntime-node's
 * binding then fails to throw into the stopping thread and aborts (std::terminate on a Napi::Error).
 * A worker that does not exit within `graceMs` (one stuck in a loop of its own) is terminated.
 */
export async function stopWorker(worker: Worker, graceMs = STOP_GRACE_MS): Promise<void> {
  if (worker.threadId === -1) return; // exited already
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.postMessage(STOP);
  const timer = setTimeout(() => void worker.terminate(), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * On a worker: exits when stopWorker asks, after `cleanup` has run (it stops the worker's own
 * workers the same way: those of a thread that simply exits are terminated with it). Gives back
 * a function that stops listening, so that a worker with nothing left to do can end by itself.
 */
export function exitWhenAsked(port: MessagePort, cleanup: () => Promise<void> = async () => undefined): () => void {
  const onMessage = (message: unknown) => {
    if (!isStop(message) || stopping) return;
    stopping = true;
    void cleanup()
      .catch(() => undefined) // exiting all the same: there is no one left to tell
      .finally(() => process.exit(0));
  };
  port.on('message', onMessage);
  return () => port.off('message', onMessage);
}

const isStop = (message: unknown) => (message as typeof STOP | undefined)?.laborspaceStop === true;
/** Set on a worker once it was asked to stop: its jobs answer nothing more (their callers fail them on its exit). */
let stopping = false;

/** An error as it crosses between threads: its class's name and the fields the callers read. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  position?: number;
}

export function errorToWire(e: unknown): WireError {
  const error = e as Error & { code?: string; position?: number };
  return { name: error.name, message: error.message, code: error.code, position: error.position };
}

/**
 * The error again on this side: an instance of the same class when `known` has its name (so a
 * caller's `instanceof` and the statuses a server gives by class still hold), else a plain Error.
 */
export function errorFromWire(wire: WireError, known: Record<string, { prototype: Error }>): Error {
  const cls = known[wire.name];
  if (!cls) return new Error(wire.message);
  const error = Object.create(cls.prototype) as Error;
  return Object.assign(error, { name: wire.name, message: wire.message }, wire.code === undefined ? {} : { code: wire.code }, wire.position === undefined ? {} : { position: wire.position });
}

/**
 * On a worker: runs each `{id, ...}` job posted to `port` and answers `{id, result}` or
 * `{id, error}` (errorToWire's); `{id, cancel: true}` aborts that job's signal, and a job so
 * cancelled answers nothing (its caller has given up already).
 */
export function answerJobs<Job extends { id: number; cancel?: true }>(
  port: MessagePort,
  run: (job: Job, signal: AbortSignal) => Promise<{ result: unknown; transfer?: ArrayBuffer[] }>,
): void {
  const running = new Map<number, AbortController>();
  port.on('message', async (job: Job) => {
    if (isStop(job)) return; // exitWhenAsked's
    if (job.cancel) return running.get(job.id)?.abort();
    const controller = new AbortController();
    running.set(job.id, controller);
    try {
      const { result, transfer } = await run(job, controller.signal);
      if (!controller.signal.aborted && !stopping) port.postMessage({ id: job.id, result }, transfer ?? []);
    } catch (e) {
      if (!controller.signal.aborted && !stopping) port.postMessage({ id: job.id, error: errorToWire(e) });
    } finally {
      running.delete(job.id);
    }
  });
}
