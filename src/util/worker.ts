/** Worker threads running one of this package's modules. */
import { type MessagePort, Worker } from 'node:worker_threads';

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
 * On a worker: runs each `{id, ...}` job posted to `port` and answers `{id, result}` or
 * `{id, error}` (as `wireError` writes it); `{id, cancel: true}` aborts that job's signal, and a
 * job so cancelled answers nothing (its caller has given up already).
 */
export function answerJobs<Job extends { id: number; cancel?: true }>(
  port: MessagePort,
  run: (job: Job, signal: AbortSignal) => Promise<{ result: unknown; transfer?: ArrayBuffer[] }>,
  wireError: (e: unknown) => unknown,
): void {
  const running = new Map<number, AbortController>();
  port.on('message', async (job: Job) => {
    if (job.cancel) return running.get(job.id)?.abort();
    const controller = new AbortController();
    running.set(job.id, controller);
    try {
      const { result, transfer } = await run(job, controller.signal);
      if (!controller.signal.aborted) port.postMessage({ id: job.id, result }, transfer ?? []);
    } catch (e) {
      if (!controller.signal.aborted) port.postMessage({ id: job.id, error: wireError(e) });
    } finally {
      running.delete(job.id);
    }
  });
}
