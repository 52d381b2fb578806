/** `laborspace encode`: every entity embedded by the encoder, with a progress bar of texts per second. */
import type { Command } from 'commander';

import { encodeStep } from '../../build.js';
import type { EncodeSummary } from '../../encoder/encode-entities.js';
import type { EncodeProgress } from '../../encoder/sentence-encoder.js';
import { type Cli, print } from '../context.js';
import { type EncoderFlags, encoderOptions } from '../options.js';
import { progress } from '../progress.js';

export function registerEncode(program: Command, cli: Cli): void {
  encoderOptions(program.command('encode').description('embed every entity with the encoder (cached: only changed texts are encoded again)')).action(
    async (opts: EncoderFlags) => {
      const { home, json } = cli.globals();
      const { bar, onEncodeProgress } = encodeProgress(json);
      try {
        await cli.withStore(async (store) => {
          const summary = await encodeStep(store, home, { ...opts, onNote: cli.note, onEncodeProgress });
          bar.stop();
          print(json, summary, () => formatEncode(summary));
        }, { create: true });
      } finally {
        bar.stop();
      }
    },
  );
}

/** The encode progress bar, labelled "texts, N/s" from the texts done so far. */
export function encodeProgress(json: boolean | undefined) {
  const bar = progress('encode', json);
  const started = Date.now();
  return {
    bar,
    onEncodeProgress: (p: EncodeProgress) => bar.update(p.done, p.total, `texts, ${Math.round(p.done / Math.max(0.001, (Date.now() - started) / 1000))}/s`),
  };
}

export function formatEncode(s: EncodeSummary): string {
  const rate = s.encoded && s.seconds ? `, ${(s.encoded / s.seconds).toFixed(0)} texts/s` : '';
  return `Encoded ${s.entities} entities with ${s.modelId} in ${s.seconds.toFixed(1)} s: ${s.encoded} texts encoded${rate}, ${s.cached} from the cache, ${s.truncated} truncated to the model's limit.`;
}
