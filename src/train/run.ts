/**
 * `laborspace train`: pooled states (cached), examples, base metrics, training, test metrics, and
 * the fine-tuned space: the trained head written into a copy of the ONNX model (so new text is
 * embedded by the fine-tuned encoder), every entity re-embedded, the run recorded in the store.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { encodeModel } from '../encoder/onnx-proto.js';
import { ensureUseLiteModel, sha256, useLitePackageDir } from '../encoder/model-cache.js';
import { pooledStates } from '../encoder/encode-entities.js';
import { SentenceEncoder, type EncodeProgress } from '../encoder/sentence-encoder.js';
import { readTfjsWeights } from '../encoder/tfjs-weights.js';
import { buildUseLiteGraph, USE_LITE_TANH_BIAS, USE_LITE_TANH_WEIGHTS } from '../encoder/use-lite.js';
import type { Store } from '../store/index.js';
import { VERSION } from '../version.js';
import { evaluateSpace, type SpaceMetrics } from './evaluate.js';
import { CheckpointError, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { buildExamples, DEFAULT_KINDS, type KindConfig } from './examples.js';
import { DEFAULT_TRAIN_CONFIG, embedAll, type HeadParams, initialHead, type TrainConfig, trainHead, type TrainHooks, type TrainState } from './trainer.js';

/** The store's model id for the fine-tuned space. */
export const TUNED_MODEL_ID = 'use-lite-tuned';

export interface TrainOptions extends Partial<TrainConfig> {
  kinds?: Record<string, KindConfig>;
  holdOut?: number;
  /** Go on from the checkpoint an interrupted run with the same data and config left (default true). */
  resume?: boolean;
}

export interface TrainSummary {
  runId: number;
  config: TrainConfig & { holdOut: number; kinds: Record<string, KindConfig> };
  trainPairs: Record<string, number>;
  base: SpaceMetrics;
  tuned: SpaceMetrics;
  bestStep: number;
  stepsRun: number;
  stoppedEarly: boolean;
  /** The step a checkpoint let this run start after (0: from the pretrained head). */
  resumedFrom: number;
  modelDir: string;
  seconds: number;
}

/** The pretrained head: TF.js stores the tanh layer's kernel as [in, out]; the head wants [out, in]. */
export function pretrainedHead(): HeadParams {
  const weights = readTfjsWeights(useLitePackageDir());
  const w = weights.get(USE_LITE_TANH_WEIGHTS)!;
  const [dimIn, dimOut] = w.shape;
  const weight = new Float32Array(dimIn * dimOut);
  for (let i = 0; i < dimIn; i++) for (let o = 0; o < dimOut; o++) weight[o * dimIn + i] = w.data[i * dimOut + o];
  return { weight, bias: Float32Array.from(weights.get(USE_LITE_TANH_BIAS)!.data), dimIn, dimOut };
}

/** Writes the fine-tuned encoder: the converted graph with the trained head, beside the base model. */
function writeTunedModel(home: string, baseDir: string, head: HeadParams): { dir: string; hash: string } {
  const weights = readTfjsWeights(useLitePackageDir());
  const kernel = new Float32Array(head.dimIn * head.dimOut);
  for (let i = 0; i < head.dimIn; i++) for (let o = 0; o < head.dimOut; o++) kernel[i * head.dimOut + o] = head.weight[o * head.dimIn + i];
  weights.set(USE_LITE_TANH_WEIGHTS, { shape: [head.dimIn, head.dimOut], data: kernel });
  weights.set(USE_LITE_TANH_BIAS, { shape: [head.dimOut], data: head.bias });
  const onnx = encodeModel(buildUseLiteGraph(weights, { adapter: head.adapter }), { opset: 17, producer: 'laborspace', producerVersion: VERSION, docString: 'Universal Sentence Encoder lite with a head fine-tuned on labor-market relations' });
  const hash = sha256(onnx);
  const dir = join(home, 'models', `use-lite-tuned-${hash.slice(0, 12)}`);
  if (!existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, 'onnx'), { recursive: true });
    writeFileSync(join(tmp, 'onnx', 'model.onnx'), onnx);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'config.json']) copyFileSync(join(baseDir, f), join(tmp, f));
    renameSync(tmp, dir);
  }
  return { dir, hash };
}

export async function trainStep(store: Store, home: string, options: TrainOptions = {}, hooks: TrainHooks & { onEncodeProgress?: (p: EncodeProgress) => void; onNote?: (m: string) => void } = {}): Promise<TrainSummary> {
  const started = Date.now();
  const { kinds = DEFAULT_KINDS, holdOut = 0.2, resume = true, ...rest } = options;
  const config = { ...DEFAULT_TRAIN_CONFIG, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) } as TrainConfig;
  const base = ensureUseLiteModel(home, hooks.onNote);
  const encoder = await SentenceEncoder.load(base.dir);
  let pooled;
  try {
    pooled = await pooledStates(store, encoder, hooks.onEncodeProgress);
  } finally {
    await encoder.close();
  }
  const rowOf = new Map(pooled.refs.map((r, i) => [r, i]));
  const examples = buildExamples(store, rowOf, kinds, holdOut, config.seed);
  const dataHash = createHash('sha256');
  for (const set of examples.train) dataHash.update(set.kind).update(new Uint8Array(set.anchors.buffer)).update(new Uint8Array(set.positives.buffer));
  const fullConfig = { ...config, holdOut, kinds };
  const hash = dataHash.digest('hex');
  // A finished run on the same data and config, whose model is still there, is not redone.
  const previous = store
    .runs({ kind: 'train' })
    .reverse()
    .find((r) => r.status === 'done' && r.dataHash === hash && JSON.stringify(r.config) === JSON.stringify(fullConfig));
  const tunedModel = store.model(TUNED_MODEL_ID);
  if (previous && tunedModel?.extra.runId === previous.id && existsSync(String(tunedModel.extra.dir))) {
    hooks.onNote?.(`training run ${previous.id} already fitted this data and config: reusing it`);
    const m = previous.metrics as unknown as { base: SpaceMetrics; tuned: SpaceMetrics; bestStep: number; stepsRun: number; stoppedEarly: boolean; trainPairs: Record<string, number> };
    return { runId: previous.id, config: fullConfig, trainPairs: m.trainPairs, base: m.base, tuned: m.tuned, bestStep: m.bestStep, stepsRun: m.stepsRun, stoppedEarly: m.stoppedEarly, resumedFrom: 0, modelDir: String(tunedModel.extra.dir), seconds: (Date.now() - started) / 1000 };
  }
  // Checkpoints are kept per data and configuration, so only the same run can go on from one.
  const key = sha256(`${hash}\n${JSON.stringify(fullConfig)}`);
  const checkpoint = join(home, 'checkpoints', `train-${key.slice(0, 16)}.ckpt`);
  let saved: TrainState | undefined;
  if (resume) {
    try {
      saved = readCheckpoint(checkpoint, key);
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      hooks.onNote?.(`${e.message}: training from the start`);
    }
    if (saved) hooks.onNote?.(`resuming the interrupted training run from step ${saved.step} of ${config.steps}`);
  }
  const runId = store.startRun({ kind: 'train', config: fullConfig, dataHash: hash });
  try {
    const pretrained = pretrainedHead();
    const baseMetrics = evaluateSpace(embedAll(pooled, pretrained), pooled.dim, pooled.refs, examples.test);
    const initial = initialHead(pretrained, config.adapterRank, config.seed);
    const onCheckpoint = (state: TrainState) => {
      writeCheckpoint(checkpoint, key, state);
      hooks.onCheckpoint?.(state);
    };
    const result = trainHead(pooled, examples.train, examples.validation, initial, config, { ...hooks, onCheckpoint }, saved);
    const tunedVectors = embedAll(pooled, result.head);
    const tunedMetrics = evaluateSpace(tunedVectors, pooled.dim, pooled.refs, examples.test);
    const tuned = writeTunedModel(home, base.dir, result.head);
    store.transaction(() => {
      store.registerModel({ id: TUNED_MODEL_ID, name: TUNED_MODEL_ID, dim: result.head.dimOut, hash: tuned.hash, extra: { dir: tuned.dir, baseHash: base.hash, runId } });
      store.putVectors(TUNED_MODEL_ID, pooled.refs.map((ref, i) => ({ ref, vector: tunedVectors.slice(i * pooled.dim, (i + 1) * pooled.dim) })));
    });
    const summary: TrainSummary = {
      runId,
      config: fullConfig,
      trainPairs: Object.fromEntries(examples.train.map((s) => [s.kind, s.anchors.length])),
      base: baseMetrics,
      tuned: tunedMetrics,
      bestStep: result.bestStep,
      stepsRun: result.stepsRun,
      stoppedEarly: result.stoppedEarly,
      resumedFrom: saved?.step ?? 0,
      modelDir: tuned.dir,
      seconds: (Date.now() - started) / 1000,
    };
    store.finishRun(runId, {
      status: 'done',
      metrics: { base: baseMetrics, tuned: tunedMetrics, bestStep: result.bestStep, stepsRun: result.stepsRun, stoppedEarly: result.stoppedEarly, resumedFrom: summary.resumedFrom, trainPairs: summary.trainPairs },
    });
    rmSync(checkpoint, { force: true });
    return summary;
  } catch (e) {
    store.finishRun(runId, { status: 'failed', metrics: { error: (e as Error).message } });
    throw e;
  }
}
