/**
 * `serve --workers N`: N processes share the port through Node's `cluster` (the primary accepts
 * the connections and hands them out). The primary opens no space; each worker opens the home
 * read-only. A worker that dies after it started serving is replaced; one that dies before (a
 * broken home, say), or does not start serving within `startSeconds` (a home on a mount that no
 * longer answers), stops the whole server instead of restarting forever or waiting. Each worker's /health
 * says which process answered and what the primary last told it of the others.
 */
import cluster, { type Worker } from 'node:cluster';

export interface ClusterHealth {
  worker: { id: number; pid: number };
  workers: { size: number; alive: number; restarts: number };
}

interface StateMessage {
  laborspaceCluster: ClusterHealth['workers'];
}

/** The primary: forks `size` workers and keeps them running until SIGTERM or SIGINT. */
export function runPrimary(size: number, note: (message: string) => void, startSeconds = 120): Promise<void> {
  let restarts = 0, stopping = false;
  const serving = new WeakSet<Worker>();
  const lateToStart = new WeakSet<Worker>();
  const fork = () => {
    const worker = cluster.fork();
    const deadline = setTimeout(() => {
      if (serving.has(worker)) return;
      lateToStart.add(worker);
      worker.process.kill('SIGKILL');
    }, startSeconds * 1000);
    worker.once('exit', () => clearTimeout(deadline));
  };
  const workers = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  const broadcast = () => {
    const message: StateMessage = { laborspaceCluster: { size, alive: workers().filter((w) => serving.has(w)).length, restarts } };
    for (const w of workers()) if (w.isConnected()) w.send(message);
  };
  return new Promise<void>((resolve, reject) => {
    const stop = () => {
      note(`stopping ${workers().length} serve workers`);
      stopping = true;
      for (const w of workers()) w.process.kill('SIGTERM');
    };
    cluster.on('listening', (w) => {
      serving.add(w);
      broadcast();
    });
    cluster.on('exit', (w, code, signal) => {
      if (stopping || !serving.has(w)) {
        if (!stopping) {
          stop();
          reject(new Error(lateToStart.has(w) ? `serve worker ${w.process.pid} did not start serving within ${startSeconds} s and was stopped` : `serve worker ${w.process.pid} exited before serving (${signal ?? `code ${code}`}): see its error above`));
        }
        if (!workers().length) resolve();
        return;
      }
      restarts++;
      note(`serve worker ${w.process.pid} died (${signal ?? `code ${code}`}): starting another`);
      fork();
      broadcast();
    });
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    for (let i = 0; i < size; i++) fork();
  });
}

/** In a worker: /health's cluster part, from the primary's latest message. */
export function workerHealth(): () => ClusterHealth {
  let workers: ClusterHealth['workers'] = { size: 0, alive: 0, restarts: 0 };
  process.on('message', (m: Partial<StateMessage>) => {
    if (m.laborspaceCluster) workers = m.laborspaceCluster;
  });
  return () => ({ worker: { id: cluster.worker!.id, pid: process.pid }, workers });
}
