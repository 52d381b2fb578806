/** `laborspace train`: the encoder fine-tuned on the relations, then the space re-indexed; base and tuned metrics side by side. */
import type { Command } from 'commander';

import { indexStep } from '../../build.js';
import type { SpaceMetrics } from '../../train/evaluate.js';
import { trainStep, type TrainSummary } from '../../train/run.js';
import { type Cli, print } from '../context.js';
import { readTrainConfig, type TrainFlags, trainOptions } from '../options.js';
import { progress } from '../progress.js';
import { newTable } from '../table.js';

export function registerTrain(program: Command, cli: Cli): void {
  trainOptions(program.command('train').description('fine-tune the encoder on the relations (every layer, or the head alone), write the fine-tuned encoder, re-embed every entity')).action(
    async (opts: TrainFlags) => {
      const { home, json } = cli.globals();
      const { bar, hooks } = trainProgress(cli, json);
      try {
        await cli.withStore(async (store) => {
          const summary = await trainStep(store, home, readTrainConfig(opts), { ...hooks, onNote: cli.note });
          bar.stop();
          indexStep(store, home, { onNote: cli.note });
          print(json, summary, () => formatTrain(summary));
        });
      } finally {
        bar.stop();
      }
    },
  );
}

/** The training progress bar (steps and their losses, then the re-embedding) and validation notes. */
export function trainProgress(cli: Cli, json: boolean | undefined) {
  const bar = progress('train', json);
  return {
    bar,
    hooks: {
      onStep: (step: number, steps: number, losses: Record<string, number>) =>
        bar.update(step, steps, Object.entries(losses).map(([k, v]) => `${k} ${v.toFixed(3)}`).slice(0, 4).join(', ')),
      onEval: (step: number, mrr: number) => cli.note(`step ${step}: validation MRR ${mrr.toFixed(4)}`),
      onEmbedProgress: (done: number, total: number) => {
        if (done === total || done % 2048 < 64) bar.update(done, total, 'embedding every entity');
      },
    },
  };
}

const fixed = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : 'n/a');

/** Base and tuned metrics side by side (tuned: one column per way of tuning, labelled). */
export function formatMetrics(base: SpaceMetrics, tuned: SpaceMetrics | [string, SpaceMetrics][]): string[] {
  const columns: [string, SpaceMetrics][] = Array.isArray(tuned) ? tuned : [['tuned', tuned]];
  const table = newTable(['relation kind (held out)', 'anchors', 'MRR base', ...columns.map(([l]) => `MRR ${l}`), 'R@10 base', ...columns.map(([l]) => `R@10 ${l}`)]);
  base.kinds.forEach((b, i) => {
    const at = (m: SpaceMetrics) => m.kinds.find((k) => k.kind === b.kind) ?? m.kinds[i];
    table.push([b.kind, b.anchors, fixed(b.mrr), ...columns.map(([, m]) => fixed(at(m).mrr)), fixed(b.recallAt10), ...columns.map(([, m]) => fixed(at(m).recallAt10))]);
  });
  const mean = (m: SpaceMetrics) => fixed(m.kinds.reduce((s, k) => s + k.mrr, 0) / Math.max(1, m.kinds.length));
  const arrow = (f: (m: SpaceMetrics) => string) => [f(base), ...columns.map(([l, m]) => `${f(m)} (${l})`)].join(' -> ');
  return [
    table.toString(),
    `mean MRR ${arrow(mean)}`,
    `type clustering ${arrow((m) => fixed(m.typeClustering))}; NAICS sector purity ${arrow((m) => fixed(m.sectorPurity))}`,
  ];
}

export function formatTrain(s: TrainSummary): string {
  const resumed = s.resumedFrom ? `, resumed after step ${s.resumedFrom}` : '';
  if (s.tune === 'full')
    return [
      `Training run ${s.runId}: the whole encoder fine-tuned, ${s.stepsRun} steps${resumed}${s.headSteps ? `, then the head alone on its states (best at step ${s.headSteps})` : ''}, ${s.seconds.toFixed(0)} s.`,
      ...formatMetrics(s.base, s.tuned),
    ].join('\n');
  const adapter = s.config.adapterRank ? `, with a rank-${s.config.adapterRank} adapter${s.config.trainDense ? '' : ' (dense layer frozen)'}` : '';
  return [
    `Training run ${s.runId} (head only)${adapter}: best validation MRR at step ${s.bestStep} of ${s.stepsRun}${s.stoppedEarly ? ' (stopped early)' : ''}${resumed}.`,
    ...formatMetrics(s.base, s.tuned),
  ].join('\n');
}
