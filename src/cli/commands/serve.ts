/** `laborspace serve`: the HTTP API and the explorer, in one process or several sharing the port. */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

import type { Command } from 'commander';

import { runPrimary, workerHealth } from '../../server/cluster.js';
import { LaborSpace } from '../../space.js';
import type { Cli } from '../context.js';
import { nonNegativeInt, positiveInt } from '../options.js';

export function registerServe(program: Command, cli: Cli): void {
  program
    .command('serve')
    .description('the HTTP API and the web explorer (at /): near, entities, axis, arith, shock, embed, score')
    .option('--host <host>', 'address to bind (loopback unless told otherwise)', '127.0.0.1')
    .option('--port <port>', 'port (0: any free one)', nonNegativeInt, 8080)
    .option('--body-limit <bytes>', 'largest request body', positiveInt, 1 << 20)
    .option('--log', 'log every request')
    .option('--workers <n>', 'processes sharing the port, each with the space opened read-only (default: the number of cores)', positiveInt, availableParallelism())
    .option('--start-timeout <seconds>', 'with --workers: how long a process may take to start serving before the server stops', positiveInt, 120)
    .action(async (opts: { host: string; port: number; bodyLimit: number; log?: boolean; workers: number; startTimeout: number }) => {
      const { home } = cli.globals();
      const { note } = cli;
      if (opts.workers > 1 && cluster.isPrimary) {
        // Opened once writable (migrations, stale indices rebuilt) before the workers read it.
        await (await LaborSpace.open(home, { onNote: note })).close();
        note(`Labor Space: ${opts.workers} processes serving ${home}`);
        return runPrimary(opts.workers, note, opts.startTimeout);
      }
      const { createServer } = await import('../../server/server.js'); // Fastify: only this command needs it
      let space: LaborSpace | undefined;
      const release = async () => {
        await space?.close();
        // The channel to the primary would keep a worker alive. Worker.disconnect, not
        // process.disconnect: the latter makes cluster exit with code 0, whatever went wrong.
        if (cluster.isWorker) cluster.worker!.disconnect();
      };
      let app: Awaited<ReturnType<typeof createServer>>, address: string;
      try {
        space = await LaborSpace.open(home, { onNote: note, readonly: cluster.isWorker });
        app = await createServer(space, { bodyLimit: opts.bodyLimit, logLevel: opts.log ? 'info' : 'error', health: cluster.isWorker ? workerHealth() : undefined });
        address = await app.listen({ host: opts.host, port: opts.port });
      } catch (e) {
        // A worker that cannot start must end, so that the primary sees it die before serving.
        await release();
        throw e;
      }
      note(`Labor Space (${space.modelId}) serving on ${address}: the explorer at ${address}/, the API under ${address}/v1/`);
      const stop = async () => {
        await app.close();
        await release();
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
