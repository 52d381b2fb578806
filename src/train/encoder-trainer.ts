/**
 * Fine-tunes the whole encoder (embeddings, both transformer layers, the head) on the relation
 * pairs: each step packs the batch's texts, runs the native forward, loss and backward
 * (Encoder.lossStep), clips the global gradient norm and takes AdamW steps per tensor, the
 * learning rate scaled down layer by layer below the head (layer-wise decay) and optionally pulled
 * back toward the pretrained weights (L2 toward them). The embedding table's gradient is sparse:
 * only the rows of the batch's tokens, updated lazily. Batches round-robin over relation kinds
 * as the head trainer's do; MNRL batches add negatives drawn from the targets' whole type and
 * never count a known positive as a negative. A time budget fixes the step count after timing the
 * first steps, so the run (and a resume) is deterministic from then on.
 */
import { adamwRows, adamwStep, type Encoder, type EncoderTensorSpec } from '../native.js';
import { randomIndex, seededRandom } from '../util/random.js';
import { gatherRows } from '../util/rows.js';
import type { PairSet } from './examples.js';
import { clipGlobalNorm, knownPositives, lrSchedule, mineNegatives, mnrlExtras, sampleBatch } from './trainer.js';
import { packTokens } from '../encoder/native-use-lite.js';

export interface EncoderTuneConfig {
  /** Steps to run; 0: as many as fit `budgetSeconds`. */
  steps: number;
  budgetSeconds: number;
  /** Pairs per step. */
  batchSize: number;
  /** The head's peak learning rate; each layer below gets `layerDecay` times the one above. */
  lr: number;
  layerDecay: number;
  warmupSteps: number;
  weightDecay: number;
  /** Strength of the pull toward the pretrained weights: adds l2Pretrained * (w - w0) to each gradient. */
  l2Pretrained: number;
  /**
   * Weight of the distillation term (distillLoss): every batch also keeps its texts' pairwise
   * similarities near the pretrained space's. 0: none.
   */
  distill: number;
  clipNorm: number;
  scale: number;
  margin: number;
  seed: number;
  /**
   * MNRL: extra negatives per batch drawn from every entity of the positives' type (those
   * evaluation ranks them among), known positives left out. In-batch negatives alone are only the
   * kind's own targets (e.g. O*NET's 35 skills, never ESCO's 14k).
   */
  poolNegatives: number;
  /**
   * MNRL: each anchor of a batch also brings one of its `minedNegatives` nearest pool rows in the
   * pretrained space (`teacher`), known positives left out. 0: none.
   */
  minedNegatives: number;
  /**
   * Steps of masked-token prediction on the entities' texts before relation training (the seed
   * paper's "context learning", masked-tokens.ts); 0 skips the stage.
   */
  contextSteps: number;
  /** Texts per masked-token step. */
  contextTexts: number;
  /** Share of each text's tokens the stage predicts. */
  contextMask: number;
  /** The stage's peak learning rate (layer-wise decay below the top layer, as relation training's; its new output layer at 10x). */
  contextLr: number;
  /** Steps between checkpoints. */
  checkpointEvery: number;
  /** Recompute the FFN hidden layers and attention probabilities in the backward pass (less memory). */
  recompute: boolean;
  /**
   * Steps of a last stage that trains the head alone on the fine-tuned body's pooled states (as
   * `--tune head` does on the pretrained body's, early-stopped on validation MRR): cheap, since the
   * body is frozen then. 0 skips it.
   */
  headSteps: number;
}

export const DEFAULT_ENCODER_TUNE_CONFIG: EncoderTuneConfig = {
  steps: 0,
  budgetSeconds: 300,
  batchSize: 32,
  lr: 3e-4,
  layerDecay: 0.8,
  warmupSteps: 20,
  weightDecay: 0.01,
  // Measured one by one (README): the pull toward the pretrained weights kept AI exposure against
  // Felten et al. at or above head-only's where distillation did not.
  l2Pretrained: 0.2,
  distill: 0,
  clipNorm: 1,
  scale: 20,
  margin: 0.25,
  seed: 42,
  poolNegatives: 32,
  minedNegatives: 0,
  contextSteps: 0,
  contextTexts: 64,
  contextMask: 0.15,
  contextLr: 1e-4,
  checkpointEvery: 100,
  recompute: false,
  headSteps: 3000,
};

/** Steps timed before a budget fixes the step count. */
const CALIBRATION_STEPS = 4;

/** Everything a run needs to go on from the end of `step` exactly as if it had not stopped. */
export interface EncoderTrainState {
  step: number;
  /** The run's step count (fixed by the budget after calibration; 0 before). */
  steps: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  rng: number;
  losses: Record<string, number>;
}

export interface EncoderTrainHooks {
  onStep?: (step: number, steps: number, losses: Record<string, number>) => void;
  /** Called every checkpointEvery steps with the state to resume from (the arrays are the trainer's own: copy or write them at once). */
  onCheckpoint?: (state: EncoderTrainState) => void;
}

export interface EncoderTrainResult {
  params: Float32Array;
  steps: number;
  secondsPerStep: number;
}

/**
 * AdamW on one tensor of the arena-sized arrays, dense. Weight decay on the matrices only: not on
 * biases, layer-norm scales or the embedding table.
 */
export function adamwTensor(t: EncoderTensorSpec, a: { params: Float32Array; grad: Float32Array; m: Float32Array; v: Float32Array }, lr: number, weightDecay: number, step: number): void {
  const end = t.offset + t.rows * t.cols;
  const decay = t.name.endsWith('.weight') ? weightDecay : 0;
  adamwStep(a.params.subarray(t.offset, end), a.grad.subarray(t.offset, end), a.m.subarray(t.offset, end), a.v.subarray(t.offset, end), { lr, weightDecay: decay, step });
}

/** The learning-rate factor of each arena tensor: 1 for the head, layerDecay^k k layers below it (the embeddings lowest). */
export function layerLrFactors(encoder: Encoder, layerDecay: number): number[] {
  const layers = encoder.dims.layers.length;
  return encoder.layout.map((t) => {
    if (t.name.startsWith('head.')) return 1;
    const layer = /^layer(\d+)\./.exec(t.name);
    return layerDecay ** (layer ? layers - Number(layer[1]) : layers + 1);
  });
}

/**
 * Trains `encoder`'s parameters from `start` (default `initial`, the pretrained arena, which is
 * also the L2 anchor) on the pairs, whose entity rows index `tokens`; goes on from `resume` when
 * given. `teacher` holds the pretrained space's unit vector of every entity row (the distillation
 * term's targets). Deterministic for a seed, a step count and a thread count.
 */
export function trainEncoder(encoder: Encoder, tokens: readonly Int32Array[], train: PairSet[], initial: Float32Array, config: EncoderTuneConfig, hooks: EncoderTrainHooks = {}, resume?: EncoderTrainState, teacher?: Float32Array, start = initial): EncoderTrainResult {
  if (!train.length) throw new RangeError('no training pairs: ingest the data first');
  if (!(config.steps > 0) && !(config.budgetSeconds > 0)) throw new RangeError('give the run steps or a time budget');
  if (initial.length !== encoder.paramCount) throw new RangeError(`initial has ${initial.length} values, the encoder ${encoder.paramCount}`);
  const dim = encoder.dims.headOut;
  if ((config.distill > 0 || config.minedNegatives > 0) && teacher?.length !== tokens.length * dim)
    throw new RangeError(`distillation and mined negatives need the pretrained vector of each of the ${tokens.length} texts`);
  if (start.length !== encoder.paramCount) throw new RangeError(`start has ${start.length} values, the encoder ${encoder.paramCount}`);
  const params = (resume?.params ?? start).slice();
  const m = resume?.m.slice() ?? new Float32Array(params.length);
  const v = resume?.v.slice() ?? new Float32Array(params.length);
  const grad = new Float32Array(params.length);
  const next = seededRandom(resume ? resume.rng : config.seed);
  const pick = (n: number) => randomIndex(next, n);
  const losses: Record<string, number> = { ...resume?.losses };
  const factors = layerLrFactors(encoder, config.layerDecay);
  const known = train.map(knownPositives);
  const mined = train.map((set, i) => (set.loss === 'mnrl' && config.minedNegatives > 0 ? mineNegatives(set, teacher!, dim, known[i], config.minedNegatives) : undefined));
  const embeddings = encoder.layout[0];
  const width = embeddings.cols;
  let steps = resume?.steps || config.steps;
  let timed = 0;
  let timedSeconds = 0;
  let step = resume?.step ?? 0;
  while (steps === 0 || step < steps) {
    step++;
    const started = performance.now();
    const kind = (step - 1) % train.length;
    const set = train[kind];
    const batch = sampleBatch(set, config.batchSize, pick);
    if (batch) {
      const { extra, options } = mnrlExtras(set, batch, known[kind], config.poolNegatives, pick, mined[kind]);
      const rows = [...batch.sides.flat(), ...extra];
      const packed = packTokens(rows.map((row) => tokens[row]), encoder.dims.maxTokens);
      const distilled = config.distill > 0 ? { teacher: gatherRows(teacher!, dim, rows), distill: config.distill } : {};
      const out = encoder.lossStep(set.loss, params, packed, grad, {
        scale: config.scale,
        margin: config.margin,
        targets: batch.targets,
        weight: set.weight,
        recompute: config.recompute,
        ...options,
        ...distilled,
      });
      losses[set.kind] = out.loss;
      const gradRows = out.embeddingRows;
      if (config.l2Pretrained > 0) {
        const l2 = config.l2Pretrained;
        for (let i = embeddings.rows * width; i < params.length; i++) grad[i] += l2 * (params[i] - initial[i]);
        out.embeddingIds.forEach((id, u) => {
          for (let j = 0; j < width; j++) gradRows[u * width + j] += l2 * (params[id * width + j] - initial[id * width + j]);
        });
      }
      // Clip by the global norm: the dense gradients past the embedding slot, and the embedding rows.
      clipGlobalNorm([grad.subarray(embeddings.rows * width), gradRows], config.clipNorm);
      const schedule = lrSchedule(step, config.warmupSteps, steps || Number.MAX_SAFE_INTEGER);
      encoder.layout.forEach((t, i) => {
        const lr = config.lr * factors[i] * schedule;
        if (i > 0) return adamwTensor(t, { params, grad, m, v }, lr, config.weightDecay, step);
        const end = t.offset + t.rows * t.cols;
        adamwRows(params.subarray(t.offset, end), width, out.embeddingIds, gradRows, m.subarray(t.offset, end), v.subarray(t.offset, end), { lr, weightDecay: 0, step });
      });
    }
    const seconds = (performance.now() - started) / 1000;
    if (step > 1 && timed < CALIBRATION_STEPS) {
      // The first step pays for allocations; the next few set the pace.
      timed++;
      timedSeconds += seconds;
      if (steps === 0 && timed === CALIBRATION_STEPS) steps = Math.max(step, Math.floor(config.budgetSeconds / (timedSeconds / timed)));
    }
    hooks.onStep?.(step, steps, losses);
    if (steps && step % config.checkpointEvery === 0 && step < steps) hooks.onCheckpoint?.({ step, steps, params, m, v, rng: next.state(), losses: { ...losses } });
  }
  return { params, steps, secondsPerStep: timed ? timedSeconds / timed : 0 };
}
