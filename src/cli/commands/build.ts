/** `laborspace build`: ingest, encode, fine-tune and index in one command, resuming where a run stopped. */
import type { Command } from 'commander';

import { build, type BuildSummary } from '../../build.js';
import { type Cli, print } from '../context.js';
import { checkFirms, type EncoderFlags, encoderOptions, type IngestFlags, ingestOptions, readTrainConfig, type TrainFlags, trainOptions } from '../options.js';
import { encodeProgress, formatEncode } from './encode.js';
import { formatIndex } from './indices.js';
import { firmFilesOf, formatIngestSummary } from './ingest.js';
import { formatTrain, trainProgress } from './train.js';

export function registerBuild(program: Command, cli: Cli): void {
  trainOptions(encoderOptions(ingestOptions(program.command('build').description('ingest the bundled data, encode it, fine-tune the encoder and index it: the whole space, resuming where a previous run stopped'))))
    .option('--no-train', 'stop at the pretrained space')
    .action(async (opts: IngestFlags & TrainFlags & EncoderFlags & { train: boolean }) => {
      const { home, json } = cli.globals();
      checkFirms(opts);
      const { bar, onEncodeProgress } = encodeProgress(json);
      try {
        const summary = await build(home, {
          dataDir: opts.data,
          onError: opts.onError,
          firmFiles: firmFilesOf(opts),
          naics2022Dir: opts.naics2022,
          threads: opts.threads,
          batchSize: opts.batchSize,
          quantized: opts.quantized,
          train: opts.train ? readTrainConfig(opts) : false,
          trainHooks: trainProgress(cli, json).hooks,
          onStep: (step) => cli.note(`build: ${step}`),
          onNote: cli.note,
          onEncodeProgress,
        });
        bar.stop();
        print(json, summary, () => formatBuild(summary));
      } finally {
        bar.stop();
      }
    });
}

function formatBuild(s: BuildSummary): string {
  return [formatIngestSummary(s.ingest), formatEncode(s.encode), ...(s.train ? [formatTrain(s.train)] : []), formatIndex(s.index), `Built in ${s.seconds.toFixed(1)} s.`].join('\n\n');
}
