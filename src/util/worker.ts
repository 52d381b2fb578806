/** Worker threads running one of this package's modules. */
import { Worker } from 'node:worker_threads';

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
