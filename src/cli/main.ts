/** The `laborspace` command line: parses arguments, calls the library, formats the answer. */
import cluster from 'node:cluster';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

import { Command, InvalidArgumentError, Option } from 'commander';

import { NAMED_AXES, type ShockResult, splitPoles } from '../analysis/analyses.js';
import { AI_DIRECTION_SKILLS, AI_DIRECTION_TEXTS, type AiConstruction, aiExposure, compareExposure } from '../analysis/exposure.js';
import { scoreFile } from '../analysis/score.js';
import { activeModel, type ModelChoice } from '../active-model.js';
import { build, encodeStep, indexStep } from '../build.js';
import { checkTypes } from '../errors.js';
import { parseFirmColumns } from '../data/firms.js';
import { defaultHome, openBuiltHomeStore, openHomeStore } from '../home.js';
import { nativeInfo } from '../native.js';
import { LaborSpace } from '../space.js';
import { exportVectors } from '../store/export.js';
import { ENTITY_TYPES, type EntityType, type Store } from '../store/index.js';
import { evaluateRun, lastTrainingRun } from '../train/evaluate-run.js';
import { DEFAULT_TUNE, trainStep, TUNE_MODES, type TrainOptions, type TuneMode } from '../train/run.js';
import { DEFAULT_ENCODER_TUNE_CONFIG } from '../train/encoder-trainer.js';
import { sameFile, writeFileAtomic } from '../util/output-file.js';
import { VERSION } from '../version.js';
import { positiveInt } from './arguments.js';
import { firmFilesOf, formatIngestSummary, runIngest } from './ingest.js';
import { progress } from './progress.js';
import { formatScore, scoreQueued } from './score.js';
import { registerWorker } from './worker.js';
import { showEntity } from '../store/entity-view.js';
import { runPrimary, workerHealth } from '../server/cluster.js';
import { formatShow } from './show.js';
import { formatArith, formatAxis, formatComparison, formatShock, shockCsv } from './analyses.js';
import { formatBuild, formatEncode, formatIndex, formatEvaluation, formatNear, formatTrain } from './space.js';

interface GlobalOptions {
  home: string;
  json?: boolean;
}

interface TrainFlags {
  tune?: TuneMode;
  config?: string;
  budget?: number;
  epochs?: number;
  steps?: number;
  adapterRank?: number;
  fresh?: boolean;
}

interface IngestFlags {
  data?: string;
  onError: 'skip' | 'fail';
  firms?: string;
  firmColumns?: ReturnType<typeof parseFirmColumns>;
  firmSource: string;
  naics2022?: string;
}

/** A duration: seconds, or a number with s, m or h (`90s`, `10m`, `1.5h`). */
export function durationSeconds(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smh]?)$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600 }[m[2] as '' | 's' | 'm' | 'h'] : NaN;
  if (!(seconds > 0)) throw new InvalidArgumentError('must be a positive duration such as 600, 90s, 10m or 1.5h');
  return seconds;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

function socVintage(value: string): 2010 | 2018 {
  if (value !== '2010' && value !== '2018') throw new InvalidArgumentError('must be 2010 or 2018');
  return Number(value) as 2010 | 2018;
}

function checkOut(out: string | undefined): void {
  if (out && !/\.(csv|json)$/i.test(out)) throw new InvalidArgumentError(`--out ${out}: the file must end in .csv or .json`);
}

/** Every entity's exposure to --out, as CSV or JSON by the file's extension; returns the count. */
function writeShockOut(result: ShockResult, out: string | undefined): number {
  if (!out) return 0;
  writeFileAtomic(out, /\.json$/i.test(out) ? JSON.stringify(result.all) : shockCsv(result));
  return result.all.length;
}

function firmColumns(value: string) {
  try {
    return parseFirmColumns(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** --types: checked as the library checks types, reported as commander reports a bad argument. */
function typeList(value: string): EntityType[] {
  try {
    return checkTypes(value) as EntityType[];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

const print = (json: boolean | undefined, value: unknown, text: () => string) => console.log(json ? JSON.stringify(value) : text());

/**
 * Longest command line accepted, in bytes. onnxruntime parses the process's command line when it
 * starts, recursing per byte, and overflows the main thread's 8 MB stack past ~28 KB (a silent
 * segfault); long text belongs in a file.
 */
export const MAX_COMMAND_LINE = 16 * 1024;

function checkCommandLine(args: readonly string[]): void {
  const bytes = args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  if (bytes > MAX_COMMAND_LINE)
    throw new InvalidArgumentError(`the command line is ${bytes.toLocaleString('en-US')} bytes, more than ${MAX_COMMAND_LINE.toLocaleString('en-US')}: pass long text in a file (near --query-file PATH, or - for standard input)`);
}

/** The query of `near`: its argument, or the text of --query-file (- for standard input). */
function nearQuery(query: string | undefined, file: string | undefined): string {
  if (query !== undefined && file !== undefined) throw new InvalidArgumentError('give the query as an argument or with --query-file, not both');
  if (file === undefined) {
    if (query === undefined) throw new InvalidArgumentError('near needs a query: an argument, or --query-file PATH (- for standard input)');
    return query;
  }
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`--query-file ${file}: ${(e as Error).message}`);
  }
}

/** "texts, N/s" for the encode progress bar, from the texts done so far. */
function encodeRate(): (done: number) => string {
  const started = Date.now();
  return (done) => `texts, ${Math.round(done / Math.max(0.001, (Date.now() - started) / 1000))}/s`;
}

export function buildProgram(): Command {
  const program = new Command('laborspace')
    .description('Industries, occupations, skills and firms in one vector space')
    .version(VERSION)
    .option('--home <dir>', 'where the store, models and indices live', defaultHome())
    .option('--json', 'machine-readable output')
    .showHelpAfterError()
    // rawArgs: the argv given to parse (set by commander, missing from its types).
    .hook('preAction', () => checkCommandLine((program as unknown as { rawArgs: string[] }).rawArgs.slice(2)));
  const globals = () => program.opts<GlobalOptions>();
  // The home's store or space for one command, closed however the command ends. Only the commands
  // that fill a home (`create`) make a missing one; the others say it is missing.
  const withStore = async (use: (store: Store) => void | Promise<void>, options: { create?: boolean } = {}) => {
    const store = (options.create ? openHomeStore : openBuiltHomeStore)(globals().home);
    try {
      await use(store);
    } finally {
      store.close();
    }
  };
  const withSpace = async (use: (space: LaborSpace) => Promise<void>) => {
    const space = await LaborSpace.open(globals().home, { onNote: note });
    try {
      await use(space);
    } finally {
      await space.close();
    }
  };
  const note = (message: string) => {
    if (!globals().json) process.stderr.write(`${message}\n`);
  };

  const ingestOptions = (cmd: Command) =>
    cmd
      .option('--data <dir>', 'data folder in the raw layout (default: the bundled data)')
      .addOption(new Option('--on-error <mode>', 'malformed rows: skip and report, or fail the load').choices(['skip', 'fail']).default('skip'))
      .option('--firms <file>', 'also load a firm file (CSV, TSV or XLSX, e.g. a Crunchbase export)')
      .option('--firm-columns <map>', 'columns of --firms: name=COL,description=COL[,id=COL][,categories=COL]', firmColumns)
      .option('--firm-source <name>', 'entity source of --firms firms', 'custom')
      .option('--naics-2022 <dir>', 'also load NAICS 2022 (Census code list and descriptions) as industry:naics2022:*');
  const encoderOptions = (cmd: Command) =>
    cmd
      .option('--threads <n>', 'encoder threads (default: all cores)', positiveInt)
      .option('--batch-size <n>', 'texts per encoder batch', positiveInt, 32)
      .option('--quantized', 'use the int8 model: about 2.4x faster, cosine >= 0.995 with the fp32 one');
  const checkFirms = (opts: IngestFlags) => {
    if (opts.firms && !opts.firmColumns) throw new InvalidArgumentError('--firms needs --firm-columns');
  };

  const trainOptions = (cmd: Command) =>
    cmd
      .addOption(new Option('--tune <mode>', `full: every layer of the encoder; head: only its tanh head on frozen states (default: ${DEFAULT_TUNE})`).choices([...TUNE_MODES]))
      .option('--config <file>', 'training configuration (JSON: tune, holdOut, kinds; encoder: {steps, budgetSeconds, batchSize, lr, layerDecay, warmupSteps, weightDecay, l2Pretrained, clipNorm, scale, margin, seed, recompute} for the full fine-tune; steps, batchSize, lr, warmupSteps, weightDecay, clipNorm, scale, margin, evalEvery, patience, seed, adapterRank, adapterLr, trainDense for the head)')
      .option('--budget <time>', `full fine-tune: train for about this long, e.g. 10m (default ${DEFAULT_ENCODER_TUNE_CONFIG.budgetSeconds / 60}m)`, durationSeconds)
      .option('--epochs <n>', 'full fine-tune: passes over the training pairs instead of a time budget (for a GPU or a long run)', positiveNumber)
      .option('--steps <n>', 'training steps (overrides the configuration and the budget)', positiveInt)
      .option('--adapter-rank <n>', 'head: add a low-rank residual adapter of this rank after the tanh layer (overrides the configuration)', positiveInt)
      .option('--fresh', "train from the start even where an interrupted run's checkpoint could be resumed");
  const readTrainConfig = (opts: TrainFlags): TrainOptions => {
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
    const encoder = { ...config.encoder, ...(opts.budget ? { budgetSeconds: opts.budget } : {}), ...(tune === 'full' && opts.steps ? { steps: opts.steps } : {}) };
    return {
      ...config,
      tune,
      encoder,
      ...(opts.epochs ? { epochs: opts.epochs } : {}),
      ...(tune === 'head' && opts.steps ? { steps: opts.steps } : {}),
      ...(opts.adapterRank ? { adapterRank: opts.adapterRank } : {}),
      ...(opts.fresh ? { resume: false } : {}),
    };
  };
  const trainProgress = (json: boolean | undefined) => {
    const bar = progress('train', json);
    return {
      bar,
      hooks: {
        onStep: (step: number, steps: number, losses: Record<string, number>) =>
          bar.update(step, steps, Object.entries(losses).map(([k, v]) => `${k} ${v.toFixed(3)}`).slice(0, 4).join(', ')),
        onEval: (step: number, mrr: number) => note(`step ${step}: validation MRR ${mrr.toFixed(4)}`),
        onEmbedProgress: (done: number, total: number) => {
          if (done === total || done % 2048 < 64) bar.update(done, total, 'embedding every entity');
        },
      },
    };
  };

  trainOptions(encoderOptions(ingestOptions(program.command('build').description('ingest the bundled data, encode it, fine-tune the encoder and index it: the whole space, resuming where a previous run stopped'))))
    .option('--no-train', 'stop at the pretrained space')
    .action(async (opts: IngestFlags & TrainFlags & { threads?: number; batchSize: number; quantized?: boolean; train: boolean }) => {
      const { home, json } = globals();
      checkFirms(opts);
      const bar = progress('encode', json);
      const rate = encodeRate();
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
          trainHooks: trainProgress(json).hooks,
          onStep: (step) => note(`build: ${step}`),
          onNote: note,
          onEncodeProgress: (p) => bar.update(p.done, p.total, rate(p.done)),
        });
        bar.stop();
        print(json, summary, () => formatBuild(summary));
      } finally {
        bar.stop();
      }
    });

  ingestOptions(program.command('ingest').description('load NAICS, O*NET, ESCO, firms and crosswalks into the store')).action(async (opts: IngestFlags) => {
    const { json } = globals();
    checkFirms(opts);
    await withStore(async (store) => {
      const summary = await runIngest(store, { ...opts, json });
      print(json, summary, () => formatIngestSummary(summary));
    }, { create: true });
  });

  encoderOptions(program.command('encode').description('embed every entity with the encoder (cached: only changed texts are encoded again)')).action(
    async (opts: { threads?: number; batchSize: number; quantized?: boolean }) => {
      const { home, json } = globals();
      const bar = progress('encode', json);
      const rate = encodeRate();
      try {
        await withStore(async (store) => {
          const summary = await encodeStep(store, home, { ...opts, onNote: note, onEncodeProgress: (p) => bar.update(p.done, p.total, rate(p.done)) });
          bar.stop();
          print(json, summary, () => formatEncode(summary));
        }, { create: true });
      } finally {
        bar.stop();
      }
    },
  );

  trainOptions(program.command('train').description('fine-tune the encoder on the relations (every layer, or the head alone), write the fine-tuned encoder, re-embed every entity')).action(
    async (opts: TrainFlags) => {
      const { home, json } = globals();
      const { bar, hooks } = trainProgress(json);
      try {
        await withStore(async (store) => {
          const summary = await trainStep(store, home, readTrainConfig(opts), { ...hooks, onNote: note });
          bar.stop();
          indexStep(store, home, { onNote: note });
          print(json, summary, () => formatTrain(summary));
        });
      } finally {
        bar.stop();
      }
    },
  );

  program
    .command('eval')
    .description('held-out MRR and recall@10 per relation kind, base and fine-tuned side by side, type clustering, sector purity: recomputed for the last training run')
    .action(async () => {
      const { home, json } = globals();
      await withStore(async (store) => {
        const run = lastTrainingRun(store);
        if (!run) throw new InvalidArgumentError(`${home} has no finished training run: run \`laborspace train\``);
        note(`evaluating training run ${run.id} on its held-out relations...`);
        const evaluation = evaluateRun(store, run);
        print(json, evaluation, () => formatEvaluation(evaluation));
      });
    });

  program
    .command('index')
    .description('build the per-type nearest-neighbour indices (only those missing, stale or corrupt)')
    .addOption(
      new Option('--method <method>', 'auto: the fastest reaching recall@10 0.99; or exact, int8, hnsw everywhere').choices(['auto', 'exact', 'int8', 'hnsw']).default('auto'),
    )
    .action(async (opts: { method: 'auto' | 'exact' | 'int8' | 'hnsw' }) => {
      const { home, json } = globals();
      await withStore(async (store) => {
        const manifest = indexStep(store, home, { onNote: note, method: opts.method });
        print(json, manifest, () => formatIndex(manifest));
      });
    });

  program
    .command('near')
    .description('nearest entities of each type to a reference or a text')
    .argument('[query]', 'TYPE:SOURCE:CODE, TYPE:CODE, or text (quote it to force text); at most 5,000 characters')
    .option('--query-file <path>', 'read the query from a file (- for standard input) instead')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--k <n>', 'results per type', positiveInt, 10)
    .option('--exact', 'scan every vector exactly instead of using HNSW indices')
    .action(async (argument: string | undefined, opts: { queryFile?: string; types?: EntityType[]; k: number; exact?: boolean }) => {
      const { json } = globals();
      const query = nearQuery(argument, opts.queryFile);
      await withSpace(async (space) => {
        const result = await space.near(query, { types: opts.types, k: opts.k, exact: opts.exact });
        print(json, result, () => formatNear(result));
      });
    });

  program
    .command('arith')
    .description('nearest entities of each type to a vector expression of references, quoted texts and numbers')
    .argument('<expr>', 'e.g. \'firm:wiki:apple - industry:naics:3341 + industry:naics:6221\' or \'0.5*"artificial intelligence" + skill:onet:2.A.1.a\' (spaces around a minus after a reference)')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--k <n>', 'results per type', positiveInt, 10)
    .option('--include-operands', "keep the expression's own references in the results")
    .action(async (expr: string, opts: { types?: EntityType[]; k: number; includeOperands?: boolean }) => {
      const { json } = globals();
      await withSpace(async (space) => {
        const result = await space.arith(expr, { types: opts.types, k: opts.k, includeOperands: opts.includeOperands });
        print(json, result, () => formatArith(result));
      });
    });

  program
    .command('axis')
    .description('entities ranked along the axis from one set of poles to another: cos(x, mean(to) - mean(from)), with bootstrap intervals')
    .argument('[name]', `a named axis: ${Object.keys(NAMED_AXES).join(', ')}`)
    .option('--from <poles>', 'comma-separated references or quoted texts; a NAICS sector (industry:naics:31-33) stands for all its codes')
    .option('--to <poles>', 'the other end, as --from')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--top <n>', 'entities listed at each end per type', positiveInt, 10)
    .option('--show <refs>', 'comma-separated references whose positions are always reported')
    .option('--bootstrap <n>', 'resamples of the pole members for the intervals (0: none)', nonNegativeInt, 200)
    .action(async (name: string | undefined, opts: { from?: string; to?: string; types?: EntityType[]; top: number; show?: string; bootstrap: number }) => {
      const { json } = globals();
      let from: string[], to: string[];
      if (name) {
        const named = NAMED_AXES[name];
        if (!named) throw new InvalidArgumentError(`unknown axis "${name}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
        if (opts.from || opts.to) throw new InvalidArgumentError('give a named axis or --from and --to, not both');
        ({ from, to } = named);
      } else {
        if (!opts.from || !opts.to) throw new InvalidArgumentError('give a named axis, or both --from and --to');
        [from, to] = [splitPoles(opts.from), splitPoles(opts.to)];
      }
      await withSpace(async (space) => {
        const result = await space.axis(from, to, { types: opts.types, top: opts.top, bootstrap: opts.bootstrap, positions: opts.show ? splitPoles(opts.show) : [] });
        print(json, result, () => formatAxis(result));
      });
    });

  program
    .command('shock')
    .description("each entity's exposure to a shock direction (cosine) and its ripple: skills -> occupations -> industries -> firms")
    .requiredOption('--direction <expr>', 'a vector expression, as for arith (e.g. \'"artificial intelligence" + "machine learning"\')')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .option('--top <n>', 'entities listed per type', positiveInt, 10)
    .option('--out <file>', 'every entity of the chosen types to a .csv or .json file')
    .action(async (opts: { direction: string; types?: EntityType[]; top: number; out?: string }) => {
      const { json } = globals();
      checkOut(opts.out);
      await withSpace(async (space) => {
        const result = await space.shock(opts.direction, { types: opts.types, top: opts.top });
        if (writeShockOut(result, opts.out)) note(`${result.all.length} entities written to ${opts.out}`);
        const { all: _all, ...shown } = result;
        print(json, shown, () => formatShock(result));
      });
    });

  program
    .command('exposure')
    .description('exposure of occupations and industries to a built-in direction (ai), optionally correlated with a score file')
    .argument('<direction>', `built-in direction: ai (from ${AI_DIRECTION_SKILLS.length} ESCO AI skills, see src/analysis/exposure.ts)`)
    .addOption(new Option('--construction <how>', `skills: mean of the ESCO AI skills minus mean of all ESCO skills; texts: the sum of ${AI_DIRECTION_TEXTS.length} descriptions of AI capabilities`).choices(['skills', 'texts']).default('skills'))
    .option('--types <list>', 'comma-separated types (default: occupation,industry)', typeList)
    .option('--top <n>', 'entities listed per type', positiveInt, 10)
    .option('--compare <file>', 'a CSV, TSV or .xlsx file of outside scores by SOC or NAICS code')
    .option('--key <column>', 'the column of codes in --compare')
    .option('--value <column>', 'the column of scores in --compare')
    .option('--sheet <n>', 'worksheet of an .xlsx --compare file (1 = the first)', positiveInt, 1)
    .option('--soc-vintage <year>', 'SOC vintage of the codes: 2010 or 2018', socVintage, 2010)
    .option('--out <file>', 'every entity of the chosen types to a .csv or .json file')
    .action(async (direction: string, opts: { types?: EntityType[]; top: number; construction: AiConstruction; compare?: string; key?: string; value?: string; sheet: number; socVintage: 2010 | 2018; out?: string }) => {
      const { json } = globals();
      if (direction !== 'ai') throw new InvalidArgumentError(`unknown direction "${direction}" (built in: ai; for any other use \`laborspace shock --direction EXPR\`)`);
      if (opts.compare && (!opts.key || !opts.value)) throw new InvalidArgumentError('--compare needs --key and --value');
      if (opts.compare && opts.out && sameFile(opts.compare, opts.out)) throw new InvalidArgumentError(`--out ${opts.out} is the --compare file: write the exposure to another file`);
      checkOut(opts.out);
      await withSpace(async (space) => {
        const types = opts.types ?? ['occupation', 'industry'];
        const result = await aiExposure(space, { types, top: opts.top, construction: opts.construction });
        if (writeShockOut(result, opts.out)) note(`${result.all.length} entities written to ${opts.out}`);
        const comparison = opts.compare
          ? await compareExposure(space, result, opts.compare, { key: opts.key!, value: opts.value!, sheet: opts.sheet - 1, socVintage: opts.socVintage })
          : undefined;
        const { all: _all, ...shown } = result;
        const summary = comparison ? { ...shown, comparison: { ...comparison, matches: undefined } } : shown;
        print(json, summary, () => [formatShock(result), ...(comparison ? [formatComparison(comparison)] : [])].join('\n\n'));
      });
    });

  program
    .command('map')
    .description('a 2D map of the space (PCA over every entity, or UMAP on a sample), coloured by type, chosen entities labelled, an axis drawn')
    .option('--types <list>', `comma-separated types (default: ${ENTITY_TYPES.join(',')})`, typeList)
    .addOption(new Option('--method <method>', 'projection').choices(['pca', 'umap']).default('pca'))
    .option('--sample <n>', 'entities on a UMAP map', positiveInt, 3000)
    .option('--label <refs>', 'comma-separated references to label (default: a few well-known ones)')
    .option('--axis <name>', `draw a named axis (${Object.keys(NAMED_AXES).join(', ')}); PCA only`)
    .option('--from <poles>', 'draw the axis from these poles (with --to), as for `axis`')
    .option('--to <poles>', 'the other end of the drawn axis')
    .option('--out <file>', 'map.svg, map.png, or map.json (the coordinates)', 'map.svg')
    .action(async (opts: { types?: EntityType[]; method: 'pca' | 'umap'; sample: number; label?: string; axis?: string; from?: string; to?: string; out: string }) => {
      const { json } = globals();
      if (!/\.(svg|png|json)$/i.test(opts.out)) throw new InvalidArgumentError(`--out ${opts.out}: the file must end in .svg, .png or .json`);
      if (opts.axis && !NAMED_AXES[opts.axis]) throw new InvalidArgumentError(`unknown axis "${opts.axis}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
      if (!opts.from !== !opts.to) throw new InvalidArgumentError('--from and --to go together');
      const axis = opts.axis ? NAMED_AXES[opts.axis] : opts.from ? { from: splitPoles(opts.from), to: splitPoles(opts.to!) } : undefined;
      // Loaded here: the drawing libraries are heavy and only this command needs them.
      const { mapSvg, spaceMap, svgToPng } = await import('../analysis/map.js');
      const bar = progress('umap', json);
      try {
        await withSpace(async (space) => {
          const map = await spaceMap(space, {
            types: opts.types,
            method: opts.method,
            sample: opts.sample,
            labels: opts.label ? splitPoles(opts.label) : undefined,
            axis,
            onProgress: (done, total) => bar.update(done, total, `epochs (${Math.floor((10 * done) / total) * 10}%)`),
          });
          bar.stop();
          if (/\.json$/i.test(opts.out)) writeFileAtomic(opts.out, JSON.stringify(map));
          else {
            const svg = await mapSvg(map);
            writeFileAtomic(opts.out, /\.png$/i.test(opts.out) ? svgToPng(svg) : svg);
          }
          const summary = { out: opts.out, method: map.method, points: map.points.length, labels: map.labels.map((l) => l.ref), explained: map.explained };
          print(json, summary, () => `${map.points.length} entities mapped by ${map.method.toUpperCase()}${map.explained ? ` (the two components carry ${(100 * (map.explained[0] + map.explained[1])).toFixed(1)}% of the variance)` : ''} to ${opts.out}.`);
        });
      } finally {
        bar.stop();
      }
    });

  program
    .command('score')
    .description('bulk scoring: each text of a CSV or JSONL file with its nearest occupation and industry, top skills and axis positions, streamed')
    .requiredOption('--input <file>', 'a .csv, .tsv (optionally .gz), .jsonl or .parquet file')
    .requiredOption('--text-column <column>', 'the column (or JSONL key) holding the text')
    .option('--id-column <column>', 'a column copied to the output to identify rows (default: the line number)')
    .option('--out <file>', 'the scored rows, .csv, .jsonl or .parquet (default: INPUT.scored.csv)')
    .option('--skills <n>', 'skills listed per row', nonNegativeInt, 5)
    .option('--axes <names>', `named axes to place each text on (default: ${Object.keys(NAMED_AXES).join(',')}; "none" for none)`)
    .addOption(new Option('--on-error <mode>', 'a malformed row or empty text: skip it (reported) or fail').choices(['skip', 'fail']).default('skip'))
    .option('--batch-size <n>', 'texts embedded together', positiveInt, 256)
    .option('--queue <url>', 'score on the workers of this Redis (redis://HOST:PORT/DB; see `laborspace worker`) instead of in this process')
    .option('--chunk-rows <n>', 'with --queue: rows per job, a multiple of --batch-size (default: the first multiple from 1024)', positiveInt)
    .option('--in-flight <n>', 'with --queue: jobs queued or running at once', positiveInt, 32)
    .action(async (opts: { input: string; textColumn: string; idColumn?: string; out?: string; skills: number; axes?: string; onError: 'skip' | 'fail'; batchSize: number; queue?: string; chunkRows?: number; inFlight: number }) => {
      const { json } = globals();
      const names = opts.axes === 'none' ? [] : (opts.axes ?? Object.keys(NAMED_AXES).join(',')).split(',').map((n) => n.trim()).filter(Boolean);
      for (const n of names) if (!NAMED_AXES[n]) throw new InvalidArgumentError(`unknown axis "${n}" (named axes: ${Object.keys(NAMED_AXES).join(', ')})`);
      if (!existsSync(opts.input)) throw new InvalidArgumentError(`--input ${opts.input}: no such file`);
      const out = opts.out ?? `${opts.input.replace(/\.(csv|tsv|jsonl|parquet)(\.gz)?$/i, '')}.scored.csv`;
      const axes = Object.fromEntries(names.map((n) => [n, NAMED_AXES[n]]));
      if (opts.queue) {
        const { queue, chunkRows, inFlight } = opts;
        return withSpace(async (space) => {
          const summary = await scoreQueued(space, opts.input, out, { textColumn: opts.textColumn, idColumn: opts.idColumn, skills: opts.skills, axes, onError: opts.onError, batchSize: opts.batchSize, queue, chunkRows, inFlight }, json);
          print(json, { out, ...summary }, () => formatScore(summary, out));
        });
      }
      const bar = progress('score', json);
      try {
        await withSpace(async (space) => {
          const summary = await scoreFile(space, opts.input, out, {
            textColumn: opts.textColumn,
            idColumn: opts.idColumn,
            skills: opts.skills,
            axes,
            onError: opts.onError,
            batchSize: opts.batchSize,
            onProgress: (rows, rate) => bar.update(rows, rows, `rows, ${Math.round(rate)}/s`),
          });
          bar.stop();
          print(json, { out, ...summary }, () => formatScore(summary, out));
        });
      } finally {
        bar.stop();
      }
    });

  program
    .command('serve')
    .description('the HTTP API and the web explorer (at /): near, entities, axis, arith, shock, embed, score')
    .option('--host <host>', 'address to bind (loopback unless told otherwise)', '127.0.0.1')
    .option('--port <port>', 'port (0: any free one)', nonNegativeInt, 8080)
    .option('--body-limit <bytes>', 'largest request body', positiveInt, 1 << 20)
    .option('--log', 'log every request')
    .option('--workers <n>', 'processes sharing the port, each with the space opened read-only (default: the number of cores)', positiveInt, availableParallelism())
    .action(async (opts: { host: string; port: number; bodyLimit: number; log?: boolean; workers: number }) => {
      const { home } = globals();
      if (opts.workers > 1 && cluster.isPrimary) {
        // Opened once writable (migrations, stale indices rebuilt) before the workers read it.
        await (await LaborSpace.open(home, { onNote: note })).close();
        note(`Labor Space: ${opts.workers} processes serving ${home}`);
        return runPrimary(opts.workers, note);
      }
      const { createServer } = await import('../server/server.js'); // Fastify: only this command needs it
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

  registerWorker(program, globals, note);

  program
    .command('show')
    .description('an entity, its text and its relations')
    .argument('<ref>', 'TYPE:SOURCE:CODE, or TYPE:CODE where unambiguous')
    .option('--limit <n>', 'relations shown per kind', positiveInt, 10)
    .action(async (ref: string, opts: { limit: number }) => {
      const { json } = globals();
      await withStore(async (store) => {
        const result = showEntity(store, ref, opts.limit);
        print(json, result, () => formatShow(result, (r) => store.entity(r)?.title));
      });
    });

  program
    .command('export')
    .description('write the vectors as JSON lines or for the TensorFlow Embedding Projector')
    .addOption(new Option('--format <format>', 'jsonl: one entity per line; projector: vectors.tsv + metadata.tsv').choices(['jsonl', 'projector']).default('jsonl'))
    .option('--types <list>', 'comma-separated types (default: all)', typeList)
    .option('--out <path>', 'file (jsonl; default: standard output) or folder (projector; default: ./projector)')
    .addOption(new Option('--model <model>', 'tuned: the fine-tuned space (the one near queries; the base one before training); base: the pretrained encoder\'s').choices(['tuned', 'base']).default('tuned'))
    .action(async (opts: { format: 'jsonl' | 'projector'; types?: EntityType[]; out?: string; model: ModelChoice }) => {
      const { home } = globals();
      await withStore(async (store) => {
        const model = activeModel(store, opts.model);
        if (!model) throw new InvalidArgumentError(`${home} has no vectors yet: run \`laborspace build\``);
        const result = await exportVectors(store, model.id, opts);
        if (result.files.length) note(`exported ${result.count} vectors to ${result.files.join(', ')}`);
      });
    });

  program
    .command('info')
    .description('show the native core: instruction set, threads, CUDA')
    .action(() => {
      const info = nativeInfo();
      const { home, json } = globals();
      print(json, { version: VERSION, home, native: info }, () =>
        [
          `laborspace ${VERSION}`,
          `home      ${home}`,
          `isa       ${info.isa} (supported: ${info.isas.join(', ')})`,
          `threads   ${info.threads}`,
          `cuda      ${info.cuda.compiled ? `compiled, ${info.cuda.devices} device(s)${info.cuda.name ? ` (${info.cuda.name})` : ''}` : 'not compiled'}`,
        ].join('\n'),
      );
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
