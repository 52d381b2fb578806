/** What the command line may hold: parsers of option values, the option sets several commands share, its length. */
import { readFileSync } from 'node:fs';

import { type Command, InvalidArgumentError, Option } from 'commander';

import { parseFirmColumns } from '../data/firms.js';
import { checkTypes } from '../errors.js';
import type { EntityType } from '../store/index.js';
import { DEFAULT_ENCODER_TUNE_CONFIG } from '../train/encoder-trainer.js';
import { DEFAULT_TUNE, TUNE_MODES, type TrainOptions, type TuneMode } from '../train/run.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/trainer.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** A positive integer no larger than `max`. */
export function intUpTo(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`must be an integer from 1 to ${max.toLocaleString('en-US')}`);
    return n;
  };
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** A duration: seconds, or a number with s, m or h (`90s`, `10m`, `1.5h`). */
function durationSeconds(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smh]?)$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600 }[m[2] as '' | 's' | 'm' | 'h'] : NaN;
  if (!(seconds > 0)) throw new InvalidArgumentError('must be a positive duration such as 600, 90s, 10m or 1.5h');
  return seconds;
}

function firmColumns(value: string) {
  try {
    return parseFirmColumns(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** --types: checked as the library checks types, reported as commander reports a bad argument. */
export function typeList(value: string): EntityType[] {
  try {
    return checkTypes(value) as EntityType[];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/**
 * Longest command line accepted, in bytes. onnxruntime parses the process's command line when it
 * starts, recursing per byte, and overflows the main thread's 8 MB stack past ~28 KB (a silent
 * segfault); long text belongs in a file.
 */
const MAX_COMMAND_LINE = 16 * 1024;

export function checkCommandLine(args: readonly string[]): void {
  const bytes = args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  if (bytes > MAX_COMMAND_LINE)
    throw new InvalidArgumentError(`the command line is ${bytes.toLocaleString('en-US')} bytes, more than ${MAX_COMMAND_LINE.toLocaleString('en-US')}: pass long text in a file (near --query-file PATH, or - for standard input)`);
}

export interface IngestFlags {
  data?: string;
  onError: 'skip' | 'fail';
  firms?: string;
  firmColumns?: ReturnType<typeof parseFirmColumns>;
  firmSource: string;
  naics2022?: string;
}

/** What to load: `ingest` and `build`. */
export const ingestOptions = (cmd: Command) =>
  cmd
    .option('--data <dir>', 'data folder in the raw layout (default: the bundled data)')
    .addOption(new Option('--on-error <mode>', 'malformed rows: skip and report, or fail the load').choices(['skip', 'fail']).default('skip'))
    .option('--firms <file>', 'also load a firm file (CSV, TSV or XLSX, e.g. a Crunchbase export)')
    .option('--firm-columns <map>', 'columns of --firms: name=COL,description=COL[,id=COL][,categories=COL]', firmColumns)
    .option('--firm-source <name>', 'entity source of --firms firms', 'custom')
    .option('--naics-2022 <dir>', 'also load NAICS 2022 (Census code list and descriptions) as industry:naics2022:*');

export function checkFirms(opts: IngestFlags): void {
  if (opts.firms && !opts.firmColumns) throw new InvalidArgumentError('--firms needs --firm-columns');
}

export interface EncoderFlags {
  threads?: number;
  batchSize: number;
  quantized?: boolean;
}

/** How to run the encoder: `encode` and `build`. */
export const encoderOptions = (cmd: Command) =>
  cmd
    .option('--threads <n>', 'encoder threads (default: all cores)', positiveInt)
    .option('--batch-size <n>', 'texts per encoder batch', positiveInt, 32)
    .option('--quantized', 'use the int8 model: about 2.4x faster, cosine >= 0.995 with the fp32 one');

export interface TrainFlags {
  tune?: TuneMode;
  config?: string;
  budget?: number;
  epochs?: number;
  steps?: number;
  contextSteps?: number;
  adapterRank?: number;
  fresh?: boolean;
}

/** How to fine-tune: `train` and `build`. */
export const trainOptions = (cmd: Command) =>
  cmd
    .addOption(new Option('--tune <mode>', `full: every layer of the encoder; head: only its tanh head on frozen states (default: ${DEFAULT_TUNE})`).choices([...TUNE_MODES]))
    .option('--config <file>', `training configuration (JSON: tune, holdOut, kinds; encoder: {${Object.keys(DEFAULT_ENCODER_TUNE_CONFIG).join(', ')}} for the full fine-tune; ${Object.keys(DEFAULT_TRAIN_CONFIG).join(', ')} for the head)`)
    .option('--budget <time>', `full fine-tune: train for about this long, e.g. 10m (default ${DEFAULT_ENCODER_TUNE_CONFIG.budgetSeconds / 60}m)`, durationSeconds)
    .option('--epochs <n>', 'full fine-tune: passes over the training pairs instead of a time budget (for a GPU or a long run)', positiveNumber)
    .option('--steps <n>', 'training steps (overrides the configuration and the budget)', positiveInt)
    .option('--context-steps <n>', `full fine-tune: steps of masked-token prediction on the entities' texts before relation training (default ${DEFAULT_ENCODER_TUNE_CONFIG.contextSteps}: none)`, positiveInt)
    .option('--adapter-rank <n>', 'head: add a low-rank residual adapter of this rank after the tanh layer (overrides the configuration)', positiveInt)
    .option('--fresh', "train from the start even where an interrupted run's checkpoint could be resumed");

/** The training options: --config's file, overridden by the flags. */
export function readTrainConfig(opts: TrainFlags): TrainOptions {
  let config: TrainOptions = {};
  if (opts.config) {
    try {
      config = JSON.parse(readFileSync(opts.config, 'utf8')) as TrainOptions;
    } catch (e) {
      throw new InvalidArgumentError(`${opts.config}: ${(e as Error).message}`);
    }
  }
  const tune = opts.tune ?? config.tune ?? DEFAULT_TUNE;
  if (tune === 'head' && (opts.budget || opts.epochs)) throw new InvalidArgumentError('--budget and --epochs are for --tune full');
  if (tune === 'full' && opts.adapterRank) throw new InvalidArgumentError('--adapter-rank is for --tune head');
  if (tune === 'head' && opts.contextSteps) throw new InvalidArgumentError('--context-steps is for --tune full');
  const encoder = {
    ...config.encoder,
    ...(opts.budget ? { budgetSeconds: opts.budget } : {}),
    ...(tune === 'full' && opts.steps ? { steps: opts.steps } : {}),
    ...(opts.contextSteps ? { contextSteps: opts.contextSteps } : {}),
  };
  return {
    ...config,
    tune,
    encoder,
    ...(opts.epochs ? { epochs: opts.epochs } : {}),
    ...(tune === 'head' && opts.steps ? { steps: opts.steps } : {}),
    ...(opts.adapterRank ? { adapterRank: opts.adapterRank } : {}),
    ...(opts.fresh ? { resume: false } : {}),
  };
}
