/**
 * `laborspace train`: examples, base metrics, training, test metrics, and the fine-tuned space: the
 * trained weights written into a copy of the ONNX model and its int8 variant (so new text is
 * embedded by the fine-tuned encoder), every entity re-embedded, the run recorded in the store.
 * Two ways to tune: `full` trains every layer of the encoder in the native core on the entities'
 * tokens (encoder-trainer.ts); `head` trains only the tanh head on the frozen transformer's
 * pooled states (trainer.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { BASE_MODEL_ID, TUNED_MODEL_ID } from '../active-model.js';
import { encodeModel } from '../encoder/onnx-proto.js';
import { ensureUseLiteModel, modelFile, sha256, useLitePackageDir, verifyModelDir, writeModelDir } from '../encoder/model-cache.js';
import { embedTokenLists, loadNativeUseLite } from '../encoder/native-use-lite.js';
import { pooledStates } from '../encoder/encode-entities.js';
import { SentenceEncoder, type EncodeProgress } from '../encoder/sentence-encoder.js';
import { readTfjsWeights, type TfjsTensor } from '../encoder/tfjs-weights.js';
import { buildUseLiteGraph, USE_LITE_TANH_BIAS, USE_LITE_TANH_WEIGHTS, weightsWithArena } from '../encoder/use-lite.js';
import type { HeadAdapter } from '../native.js';
import type { Store } from '../store/index.js';
import { gatherRows } from '../util/rows.js';
import { VERSION } from '../version.js';
import { evaluateSpace, type SpaceMetrics } from './evaluate.js';
import { CheckpointError, readCheckpoint, readCheckpointFile, writeCheckpoint, writeCheckpointFile } from './checkpoint.js';
import { type MaskedTokenConfig, trainMaskedTokens, USE_LITE_FIRST_PIECE, USE_LITE_MASK_TOKEN } from './masked-tokens.js';
import { DEFAULT_ENCODER_TUNE_CONFIG, type EncoderTrainState, type EncoderTuneConfig, trainEncoder } from './encoder-trainer.js';
import { buildExamples, DEFAULT_KINDS, type Examples, type KindConfig } from './examples.js';
import { DEFAULT_TRAIN_CONFIG, embedAll, type HeadParams, initialHead, type Pooled, type TrainConfig, trainHead, type TrainHooks, type TrainState } from './trainer.js';

/** Bumped when training code changes what a run produces, so a finished run is not reused. */
const TRAINER_VERSION = 3;

/** `full`: every layer of the encoder; `head`: the tanh head on the frozen transformer's pooled states. */
export type TuneMode = 'full' | 'head';
export const TUNE_MODES: readonly TuneMode[] = ['full', 'head'];
/** Measured on the bundled data (README, bench/RESULTS.md): the full fine-tune wins on held-out relations. */
export const DEFAULT_TUNE: TuneMode = 'full';

export interface TrainOptions extends Partial<TrainConfig> {
  tune?: TuneMode;
  /** The full fine-tune's settings (steps, budgetSeconds, lr, layerDecay, ...). */
  encoder?: Partial<EncoderTuneConfig>;
  /** Full fine-tune: passes over the training pairs (fixes the steps; for machines with a GPU or time). */
  epochs?: number;
  kinds?: Record<string, KindConfig>;
  holdOut?: number;
  /** Go on from the checkpoint an interrupted run with the same data and config left (default true). */
  resume?: boolean;
}

export interface TrainSummary {
  runId: number;
  tune: TuneMode;
  config: Record<string, unknown> & { holdOut: number; kinds: Record<string, KindConfig>; seed: number };
  trainPairs: Record<string, number>;
  base: SpaceMetrics;
  tuned: SpaceMetrics;
  bestStep: number;
  stepsRun: number;
  /** Full fine-tune: the best step of its last stage, the head alone on the tuned states. */
  headSteps?: number;
  stoppedEarly: boolean;
  /** The step a checkpoint let this run start after (0: from the pretrained weights). */
  resumedFrom: number;
  modelDir: string;
  seconds: number;
}

export type TrainStepHooks = Omit<TrainHooks, 'onCheckpoint'> & {
  /** After each checkpoint is written (either trainer). */
  onCheckpoint?: (state: { step: number }) => void;
  onEncodeProgress?: (p: EncodeProgress) => void;
  onNote?: (m: string) => void;
  /** Re-embedding the entities with the fine-tuned encoder. */
  onEmbedProgress?: (done: number, total: number) => void;
};

/** The pretrained head: TF.js stores the tanh layer's kernel as [in, out]; the head wants [out, in]. */
export function pretrainedHead(): HeadParams {
  const weights = readTfjsWeights(useLitePackageDir());
  const w = weights.get(USE_LITE_TANH_WEIGHTS)!;
  const [dimIn, dimOut] = w.shape;
  const weight = new Float32Array(dimIn * dimOut);
  for (let i = 0; i < dimIn; i++) for (let o = 0; o < dimOut; o++) weight[o * dimIn + i] = w.data[i * dimOut + o];
  return { weight, bias: Float32Array.from(weights.get(USE_LITE_TANH_BIAS)!.data), dimIn, dimOut };
}

/** The TF.js weights with a trained head in place of the pretrained one. */
function weightsWithHead(head: HeadParams): Map<string, TfjsTensor> {
  const weights = readTfjsWeights(useLitePackageDir());
  const kernel = new Float32Array(head.dimIn * head.dimOut);
  for (let i = 0; i < head.dimIn; i++) for (let o = 0; o < head.dimOut; o++) kernel[i * head.dimOut + o] = head.weight[o * head.dimIn + i];
  weights.set(USE_LITE_TANH_WEIGHTS, { shape: [head.dimIn, head.dimOut], data: kernel });
  weights.set(USE_LITE_TANH_BIAS, { shape: [head.dimOut], data: head.bias });
  return weights;
}

/**
 * Writes the fine-tuned encoder (fp32 and int8) from its weights, beside the base model. `hash`
 * is the one of the variant the space embeds text with (int8 when the base space was encoded so).
 */
function writeTunedModel(home: string, baseDir: string, weights: Map<string, TfjsTensor>, quantized: boolean, adapter?: HeadAdapter): { dir: string; hash: string } {
  const meta = { opset: 17, producer: 'laborspace', producerVersion: VERSION, docString: 'Universal Sentence Encoder lite fine-tuned on labor-market relations' };
  const onnx = encodeModel(buildUseLiteGraph(weights, { adapter }), meta);
  const dir = join(home, 'models', `use-lite-tuned-${sha256(onnx).slice(0, 12)}`);
  // A folder whose files all match its manifest is this model already; any other is written anew.
  if (!verifyModelDir(dir)) return { dir, hash: sha256(quantized ? readFileSync(join(dir, modelFile(true))) : onnx) };
  const int8 = encodeModel(buildUseLiteGraph(weights, { adapter, quantize: 'int8' }), { ...meta, docString: `${meta.docString}, dense layers int8` });
  const shared = Object.fromEntries(['tokenizer.json', 'tokenizer_config.json', 'config.json'].map((f) => [f, readFileSync(join(baseDir, f))]));
  const sums = writeModelDir(dir, { [modelFile(false)]: onnx, [modelFile(true)]: int8, ...shared }, { name: TUNED_MODEL_ID });
  return { dir, hash: sums[modelFile(quantized)] };
}

/** What both ways of tuning produce, before it is recorded. */
interface Trained {
  vectors: Float32Array;
  baseMetrics: SpaceMetrics;
  tunedMetrics: SpaceMetrics;
  weights: Map<string, TfjsTensor>;
  adapter?: HeadAdapter;
  bestStep: number;
  stepsRun: number;
  /** Full fine-tune: the best step of its last stage, the head alone on the tuned states (0: that stage did not improve on validation). */
  headSteps?: number;
  stoppedEarly: boolean;
  resumedFrom: number;
}

interface RunContext {
  store: Store;
  refs: string[];
  examples: Examples;
  checkpoint: string;
  key: string;
  resume: boolean;
  hooks: TrainStepHooks;
}

/** A saved state for this run, or undefined (a damaged or foreign checkpoint is reported and ignored). */
function savedState<T>(ctx: RunContext, read: () => T | undefined): T | undefined {
  if (!ctx.resume) return undefined;
  try {
    return read();
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    ctx.hooks.onNote?.(`${e.message}: training from the start`);
    return undefined;
  }
}

async function tuneHead(ctx: RunContext, pooled: Pooled, config: TrainConfig): Promise<Trained> {
  const saved = savedState(ctx, () => readCheckpoint(ctx.checkpoint, ctx.key));
  if (saved) ctx.hooks.onNote?.(`resuming the interrupted training run from step ${saved.step} of ${config.steps}`);
  const pretrained = pretrainedHead();
  const baseMetrics = evaluateSpace(embedAll(pooled, pretrained), pooled.dim, pooled.refs, ctx.examples.test);
  const initial = initialHead(pretrained, config.adapterRank, config.seed);
  const onCheckpoint = (state: TrainState) => {
    writeCheckpoint(ctx.checkpoint, ctx.key, state);
    ctx.hooks.onCheckpoint?.(state);
  };
  const result = trainHead(pooled, ctx.examples.train, ctx.examples.validation, initial, config, { ...ctx.hooks, onCheckpoint }, saved);
  const vectors = embedAll(pooled, result.head);
  return {
    vectors,
    baseMetrics,
    tunedMetrics: evaluateSpace(vectors, pooled.dim, pooled.refs, ctx.examples.test),
    weights: weightsWithHead(result.head),
    adapter: result.head.adapter,
    bestStep: result.bestStep,
    stepsRun: result.stepsRun,
    stoppedEarly: result.stoppedEarly,
    resumedFrom: saved?.step ?? 0,
  };
}

interface EncoderScalars {
  step: number;
  steps: number;
  rng: number;
  losses: Record<string, number>;
}

/** The masked-token stage's settings from the full fine-tune's. */
function contextConfig(config: EncoderTuneConfig): MaskedTokenConfig {
  const { contextSteps: steps, contextTexts: texts, contextMask: maskShare, contextLr: lr, layerDecay, warmupSteps, weightDecay, clipNorm, seed, recompute } = config;
  return { steps, texts, maskShare, lr, layerDecay, warmupSteps, weightDecay, clipNorm, seed, recompute, maskToken: USE_LITE_MASK_TOKEN, firstPiece: USE_LITE_FIRST_PIECE };
}

async function tuneEncoder(ctx: RunContext, tokens: Int32Array[], config: EncoderTuneConfig): Promise<Trained> {
  const { encoder, params: pretrained, weights } = loadNativeUseLite();
  const saved = savedState(ctx, (): EncoderTrainState | undefined => {
    const file = readCheckpointFile<EncoderScalars>(ctx.checkpoint, ctx.key);
    if (!file) return undefined;
    const [params, m, v] = file.arrays;
    if (file.arrays.length !== 3 || [params, m, v].some((a) => a.length !== encoder.paramCount)) throw new CheckpointError(ctx.checkpoint, 'saved by another kind of training run');
    return { ...file.scalars, params, m, v };
  });
  if (saved) ctx.hooks.onNote?.(`resuming the interrupted training run from step ${saved.step} of ${saved.steps}`);
  // The base space is the encode step's (the same graph through onnxruntime).
  const base = ctx.store.vectors(BASE_MODEL_ID);
  const baseRow = new Map(base.refs.map((r, i) => [r, i]));
  const baseVectors = gatherRows(base.matrix, base.dim, ctx.refs.map((ref) => {
    const row = baseRow.get(ref);
    if (row === undefined) throw new Error(`${ref} has no base vector: run \`laborspace encode\` first`);
    return row;
  }));
  const onCheckpoint = (state: EncoderTrainState) => {
    writeCheckpointFile<EncoderScalars>(ctx.checkpoint, ctx.key, { step: state.step, steps: state.steps, rng: state.rng, losses: state.losses }, [state.params, state.m, state.v]);
    ctx.hooks.onCheckpoint?.(state);
  };
  // The masked-token stage runs before the first relation step; a resumed run's checkpoint holds its result.
  let start = pretrained;
  if (config.contextSteps > 0 && !saved) {
    ctx.hooks.onNote?.(`learning the entities' texts: ${config.contextSteps} masked-token steps of ${config.contextTexts} texts`);
    const context = trainMaskedTokens(encoder, tokens, pretrained, contextConfig(config), ctx.hooks.onStep && ((step, steps, loss) => ctx.hooks.onStep!(step, steps, { masked_tokens: loss })));
    ctx.hooks.onNote?.(`masked-token loss ${context.firstLoss.toFixed(3)} -> ${context.lastLoss.toFixed(3)} (${context.secondsPerStep.toFixed(2)} s a step)`);
    start = context.params;
  }
  const result = trainEncoder(encoder, tokens, ctx.examples.train, pretrained, config, { onStep: ctx.hooks.onStep, onCheckpoint }, saved, baseVectors, start);
  ctx.hooks.onNote?.(`trained ${result.steps} steps (${result.secondsPerStep.toFixed(2)} s each, on the ${encoder.device === 'cuda' ? 'GPU' : 'CPU'}); embedding every entity with the fine-tuned encoder`);
  const width = encoder.dims.layers[encoder.dims.layers.length - 1].widthOut;
  const pooled: Pooled = { refs: ctx.refs, dim: width, matrix: new Float32Array(ctx.refs.length * width) };
  let vectors = embedTokenLists(encoder, result.params, tokens, { onProgress: ctx.hooks.onEmbedProgress, pooled: pooled.matrix });
  const params = result.params;
  let headSteps = 0;
  if (config.headSteps > 0) {
    // The last stage: the head alone on the fine-tuned body's pooled states, from the head the
    // body was tuned with, kept only where validation MRR improves on it.
    const head: HeadParams = { weight: encoder.tensor(params, 'head.weight').slice(), bias: encoder.tensor(params, 'head.bias').slice(), dimIn: width, dimOut: encoder.dims.headOut };
    const headConfig: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, steps: config.headSteps, seed: config.seed };
    ctx.hooks.onNote?.(`training the head on the fine-tuned states (${config.headSteps} steps at most)`);
    const tunedHead = trainHead(pooled, ctx.examples.train, ctx.examples.validation, head, headConfig, { onStep: ctx.hooks.onStep });
    if (tunedHead.bestStep > 0) {
      encoder.tensor(params, 'head.weight').set(tunedHead.head.weight);
      encoder.tensor(params, 'head.bias').set(tunedHead.head.bias);
      vectors = embedAll(pooled, tunedHead.head);
      headSteps = tunedHead.bestStep;
    }
  }
  return {
    vectors,
    baseMetrics: evaluateSpace(baseVectors, base.dim, ctx.refs, ctx.examples.test),
    tunedMetrics: evaluateSpace(vectors, encoder.dims.headOut, ctx.refs, ctx.examples.test),
    weights: weightsWithArena(weights, encoder.layout, params),
    bestStep: result.steps,
    stepsRun: result.steps,
    headSteps,
    stoppedEarly: false,
    resumedFrom: saved?.step ?? 0,
  };
}

export async function trainStep(store: Store, home: string, options: TrainOptions = {}, hooks: TrainStepHooks = {}): Promise<TrainSummary> {
  const started = Date.now();
  const { kinds = DEFAULT_KINDS, holdOut = 0.2, resume = true, tune = DEFAULT_TUNE, encoder: encoderOptions = {}, epochs, ...rest } = options;
  if (!TUNE_MODES.includes(tune)) throw new RangeError(`tune must be ${TUNE_MODES.join(' or ')}, got ${tune}`);
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const headConfig = { ...DEFAULT_TRAIN_CONFIG, ...defined(rest) } as TrainConfig;
  const seed = encoderOptions.seed ?? headConfig.seed;
  const base = ensureUseLiteModel(home, hooks.onNote);
  const sentenceEncoder = await SentenceEncoder.load(base.dir);
  let pooled: Pooled | undefined;
  let tokens: Int32Array[] | undefined;
  const entities = store.entities();
  let refs: string[];
  try {
    if (tune === 'head') {
      pooled = await pooledStates(store, sentenceEncoder, hooks.onEncodeProgress);
      refs = pooled.refs;
    } else {
      refs = entities.map((e) => e.ref);
      tokens = entities.map((e) => Int32Array.from(sentenceEncoder.tokenize(e.text)));
    }
  } finally {
    await sentenceEncoder.close();
  }
  const rowOf = new Map(refs.map((r, i) => [r, i]));
  const examples = buildExamples(store, rowOf, kinds, holdOut, seed);
  const totalPairs = examples.train.reduce((n, s) => n + s.anchors.length, 0);
  const encoderConfig: EncoderTuneConfig = { ...DEFAULT_ENCODER_TUNE_CONFIG, ...defined(encoderOptions), seed };
  if (epochs !== undefined) {
    if (!(epochs > 0)) throw new RangeError(`epochs must be positive, got ${epochs}`);
    encoderConfig.steps = Math.ceil((epochs * totalPairs) / encoderConfig.batchSize);
  }
  const fullConfig = tune === 'head' ? { tune, ...headConfig, holdOut, kinds } : { tune, ...encoderConfig, holdOut, kinds };
  // The run's identity: its pairs, every entity's text, the configuration and the trainer's version.
  const dataHash = createHash('sha256').update(`laborspace ${VERSION} trainer ${TRAINER_VERSION}\n`);
  for (const set of examples.train) dataHash.update(set.kind).update(new Uint8Array(set.anchors.buffer)).update(new Uint8Array(set.positives.buffer));
  for (const e of entities) dataHash.update(e.ref).update('\0').update(e.text).update('\0');
  const hash = dataHash.digest('hex');
  // A finished run on the same data and config, whose model is still there, is not redone.
  const previous = store
    .runs({ kind: 'train' })
    .reverse()
    .find((r) => r.status === 'done' && r.dataHash === hash && JSON.stringify(r.config) === JSON.stringify(fullConfig));
  const tunedModel = store.model(TUNED_MODEL_ID);
  // The trained weights live only in the model's files: damaged ones mean training again.
  const ownModel = previous !== undefined && tunedModel?.extra.runId === previous.id;
  const damage = ownModel ? verifyModelDir(String(tunedModel!.extra.dir)) : undefined;
  if (damage) hooks.onNote?.(`the fine-tuned model of training run ${previous!.id} cannot be used (${damage}): training again`);
  if (ownModel && !damage) {
    hooks.onNote?.(`training run ${previous.id} already fitted this data and config: reusing it`);
    const m = previous.metrics as unknown as { base: SpaceMetrics; tuned: SpaceMetrics; bestStep: number; stepsRun: number; headSteps?: number; stoppedEarly: boolean; trainPairs: Record<string, number> };
    return { runId: previous.id, tune, config: { ...fullConfig, seed }, trainPairs: m.trainPairs, base: m.base, tuned: m.tuned, bestStep: m.bestStep, stepsRun: m.stepsRun, headSteps: m.headSteps, stoppedEarly: m.stoppedEarly, resumedFrom: 0, modelDir: String(tunedModel.extra.dir), seconds: (Date.now() - started) / 1000 };
  }
  // Checkpoints are kept per data and configuration, so only the same run can go on from one.
  const key = sha256(`${hash}\n${JSON.stringify(fullConfig)}`);
  const ctx: RunContext = { store, refs, examples, checkpoint: join(home, 'checkpoints', `train-${key.slice(0, 16)}.ckpt`), key, resume, hooks };
  const runId = store.startRun({ kind: 'train', config: fullConfig, dataHash: hash });
  try {
    const trained = pooled ? await tuneHead(ctx, pooled, headConfig) : await tuneEncoder(ctx, tokens!, encoderConfig);
    // Text is embedded with the int8 variant when the base space was encoded with int8 (--quantized).
    const quantized = store.model(BASE_MODEL_ID)?.extra.quantized === true;
    const tunedModelFiles = writeTunedModel(home, base.dir, trained.weights, quantized, trained.adapter);
    const dim = trained.vectors.length / refs.length;
    store.transaction(() => {
      store.registerModel({ id: TUNED_MODEL_ID, name: TUNED_MODEL_ID, dim, hash: tunedModelFiles.hash, extra: { dir: tunedModelFiles.dir, baseHash: base.hash, runId, tune, quantized } });
      store.putVectors(TUNED_MODEL_ID, refs.map((ref, i) => ({ ref, vector: trained.vectors.slice(i * dim, (i + 1) * dim) })));
    });
    const trainPairs = Object.fromEntries(examples.train.map((s) => [s.kind, s.anchors.length]));
    const { baseMetrics, tunedMetrics, bestStep, stepsRun, headSteps, stoppedEarly, resumedFrom } = trained;
    store.finishRun(runId, { status: 'done', metrics: { tune, base: baseMetrics, tuned: tunedMetrics, bestStep, stepsRun, headSteps, stoppedEarly, resumedFrom, trainPairs } });
    rmSync(ctx.checkpoint, { force: true });
    return { runId, tune, config: { ...fullConfig, seed }, trainPairs, base: baseMetrics, tuned: tunedMetrics, bestStep, stepsRun, headSteps, stoppedEarly, resumedFrom, modelDir: tunedModelFiles.dir, seconds: (Date.now() - started) / 1000 };
  } catch (e) {
    store.finishRun(runId, { status: 'failed', metrics: { error: (e as Error).message } });
    throw e;
  }
}
