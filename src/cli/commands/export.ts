/** `laborspace export`: the vectors as JSON lines or for the TensorFlow Embedding Projector. */
import { type Command, InvalidArgumentError, Option } from 'commander';

import { activeModel, type ModelChoice } from '../../active-model.js';
import { exportVectors } from '../../store/export.js';
import type { EntityType } from '../../store/index.js';
import type { Cli } from '../context.js';
import { typeList } from '../options.js';

export function registerExport(program: Command, cli: Cli): void {
  program
    .command('export')
    .description('write the vectors as JSON lines or for the TensorFlow Embedding Projector')
    .addOption(new Option('--format <format>', 'jsonl: one entity per line; projector: vectors.tsv + metadata.tsv').choices(['jsonl', 'projector']).default('jsonl'))
    .option('--types <list>', 'comma-separated types (default: all)', typeList)
    .option('--out <path>', 'file (jsonl; default: standard output) or folder (projector; default: ./projector)')
    .addOption(new Option('--model <model>', 'tuned: the fine-tuned space (the one near queries; the base one before training); base: the pretrained encoder\'s').choices(['tuned', 'base']).default('tuned'))
    .action(async (opts: { format: 'jsonl' | 'projector'; types?: EntityType[]; out?: string; model: ModelChoice }) => {
      const { home } = cli.globals();
      await cli.withStore(async (store) => {
        const model = activeModel(store, opts.model);
        if (!model) throw new InvalidArgumentError(`${home} has no vectors yet: run \`laborspace build\``);
        const result = await exportVectors(store, model.id, opts);
        if (result.files.length) cli.note(`exported ${result.count} vectors to ${result.files.join(', ')}`);
      });
    });
}
