/** `laborspace eval`: the last training run's held-out metrics, recomputed now. */
import { type Command, InvalidArgumentError } from 'commander';

import type { SpaceMetrics } from '../../train/evaluate.js';
import { evaluateRun, lastTrainingRun, type RunEvaluation } from '../../train/evaluate-run.js';
import { type Cli, print } from '../context.js';
import { formatMetrics } from './train.js';

export function registerEval(program: Command, cli: Cli): void {
  program
    .command('eval')
    .description('held-out MRR and recall@10 per relation kind, base and fine-tuned side by side, type clustering, sector purity: recomputed for the last training run')
    .action(async () => {
      const { home, json } = cli.globals();
      await cli.withStore(async (store) => {
        const run = lastTrainingRun(store);
        if (!run) throw new InvalidArgumentError(`${home} has no finished training run: run \`laborspace train\``);
        cli.note(`evaluating training run ${run.id} on its held-out relations...`);
        const evaluation = evaluateRun(store, run);
        print(json, evaluation, () => formatEvaluation(evaluation));
      });
    });
}

function formatEvaluation(e: RunEvaluation): string {
  const columns: [string, SpaceMetrics][] = [[e.tune, e.tuned]];
  if (e.other) columns.push([`${e.other.tune} (run ${e.other.runId}, as recorded)`, e.other.tuned]);
  columns.sort(([a], [b]) => (a.startsWith('head') ? -1 : 1) - (b.startsWith('head') ? -1 : 1));
  return [`Training run ${e.runId} (${e.tune}), evaluated now over ${e.entities.toLocaleString('en-US')} entities:`, ...formatMetrics(e.base, columns)].join('\n');
}
