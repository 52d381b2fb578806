/**
 * Trains the head (the model's own dense 512 x 512 + tanh layer, an optional low-rank residual
 * adapter, then L2 normalisation) on frozen pooled states: batches round-robin over relation kinds,
 * each kind's loss weighted (MNRL, with extra negatives from the targets' whole type; CoSENT;
 * triplet), AdamW with linear warm-up and decay, gradient clipping by global norm, early stopping
 * on validation MRR. Deterministic for a seed and thread count.
 */
import { adamwStep, type HeadAdapter, headForward, headLossStep, type LossKind, topk } from '../native.js';
import { randomIndex, randomMatrix, seededRandom } from '../util/random.js';
import { gatherRows } from '../util/rows.js';
import { evaluateSpace, type SpaceMetrics } from './evaluate.js';
import type { PairSet } from './examples.js';

export interface HeadParams {
  /** dimOut x dimIn. */
  weight: Float32Array;
  bias: Float32Array;
  dimIn: number;
  dimOut: number;
  adapter?: HeadAdapter;
}

export interface TrainConfig {
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  /** MNRL and CoSENT scale (1 / temperature). */
  scale: number;
  margin: number;
  evalEvery: number;
  /** Evaluations without a better validation MRR before stopping. */
  patience: number;
  seed: number;
  /** Rank of the low-rank residual adapter after tanh; 0: none. */
  adapterRank: number;
  /** The adapter's peak learning rate (it starts from zero, so it wants a larger one than the dense layer). */
  adapterLr: number;
  /** false: only the adapter trains, the dense layer keeps its pretrained weights. */
  trainDense: boolean;
  /** MNRL: extra negatives per batch from every entity of the positives' type, known positives left out (see poolNegatives). */
  poolNegatives: number;
}

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  steps: 3000,
  batchSize: 128,
  lr: 1e-4,
  warmupSteps: 100,
  weightDecay: 0.01,
  clipNorm: 1,
  scale: 20,
  margin: 0.25,
  evalEvery: 200,
  patience: 3,
  seed: 42,
  adapterRank: 0,
  adapterLr: 1e-3,
  trainDense: true,
  poolNegatives: 128,
};

export interface Pooled {
  refs: string[];
  dim: number;
  matrix: Float32Array;
}

/** AdamW's first and second moments, one pair per tensor of headTensors. */
export interface Moments {
  m: Float32Array[];
  v: Float32Array[];
}

/** Everything a run needs to go on from the end of `step` exactly as if it had not stopped. */
export interface TrainState {
  step: number;
  head: HeadParams;
  moments: Moments;
  best: { step: number; mrr: number; head: HeadParams };
  stale: number;
  /** The batch sampler's generator state. */
  rng: number;
  losses: Record<string, number>;
}

export interface TrainHooks {
  onStep?: (step: number, steps: number, losses: Record<string, number>) => void;
  onEval?: (step: number, validationMrr: number) => void;
  /** Called after each evaluation with the state to resume from (a copy). */
  onCheckpoint?: (state: TrainState) => void;
}

export interface TrainResult {
  head: HeadParams;
  bestStep: number;
  bestMrr: number;
  stepsRun: number;
  stoppedEarly: boolean;
}

/** Embeddings of every pooled row through a head: the space it defines. */
export function embedAll(pooled: Pooled, head: HeadParams): Float32Array {
  return headForward(pooled.matrix, pooled.dim, head.weight, head.bias, head.dimOut, head.adapter).embeddings;
}

/** The head's tensors in a fixed order: weight, bias, then the adapter's down and up. */
export function headTensors(head: HeadParams): Float32Array[] {
  return head.adapter ? [head.weight, head.bias, head.adapter.down, head.adapter.up] : [head.weight, head.bias];
}

/**
 * The head training starts from: `pretrained`, with a new adapter of `rank` when asked for (down
 * small and random, up zero, so the adapter starts as the identity).
 */
export function initialHead(pretrained: HeadParams, rank: number, seed: number): HeadParams {
  if (!Number.isInteger(rank) || rank < 0 || rank > pretrained.dimOut) throw new RangeError(`adapterRank must be an integer from 0 to ${pretrained.dimOut}, got ${rank}`);
  if (rank === 0) return pretrained;
  const scale = 1 / Math.sqrt(pretrained.dimOut);
  const down = randomMatrix(rank, pretrained.dimOut, seed + 1).map((v) => v * scale);
  return { ...pretrained, adapter: { rank, down, up: new Float32Array(pretrained.dimOut * rank) } };
}

/** Mean MRR over kinds: the early-stopping criterion. */
export function meanMrr(metrics: SpaceMetrics): number {
  return metrics.kinds.reduce((s, k) => s + k.mrr, 0) / Math.max(1, metrics.kinds.length);
}

/** Rows of the pooled matrix, one list after another, as one matrix. */
function gather(pooled: Pooled, ...lists: readonly ArrayLike<number>[]): Float32Array {
  return gatherRows(pooled.matrix, pooled.dim, lists.flatMap((l) => Array.from(l)));
}

function scaleInPlace(x: Float32Array, factor: number): Float32Array {
  if (factor !== 1) for (let i = 0; i < x.length; i++) x[i] *= factor;
  return x;
}

/** Scales the gradients (absent ones skipped) down together when their global L2 norm is above maxNorm. */
export function clipGlobalNorm(grads: readonly (Float32Array | undefined)[], maxNorm: number): void {
  let norm = 0;
  for (const g of grads) if (g) for (const v of g) norm += v * v;
  norm = Math.sqrt(norm);
  if (norm > maxNorm) for (const g of grads) if (g) scaleInPlace(g, maxNorm / norm);
}

/** Sides of a batch a loss reads: anchors and positives, and negatives for the triplet loss. */
export function lossSides(loss: LossKind): number {
  return loss === 'triplet' ? 3 : 2;
}

/** The learning rate's factor at `step` (from 1): linear warm-up, then linear decay to 0 at `steps`. */
export function lrSchedule(step: number, warmupSteps: number, steps: number): number {
  return step <= warmupSteps ? step / warmupSteps : Math.max(0, (steps - step) / Math.max(1, steps - warmupSteps));
}

export interface Batch {
  /** Indices into the set's pairs. */
  rows: number[];
  /** Entity rows per side the loss reads: anchors, positives, and negatives for triplets. */
  sides: number[][];
  /** CoSENT and cosine-MSE targets. */
  targets?: Float32Array;
}

/**
 * A batch of up to `size` pairs of a set drawn with `pick`, its positives distinct for MNRL (an
 * in-batch negative must not be a positive in disguise); undefined when fewer than two are found.
 */
export function sampleBatch(set: PairSet, size: number, pick: (n: number) => number): Batch | undefined {
  const rows: number[] = [];
  const seen = new Set<number>();
  for (let tries = 0; rows.length < Math.min(size, set.anchors.length) && tries < size * 4; tries++) {
    const i = pick(set.anchors.length);
    if (set.loss === 'mnrl' && seen.has(set.positives[i])) continue;
    seen.add(set.positives[i]);
    rows.push(i);
  }
  if (rows.length < 2) return undefined;
  const sides = [rows.map((i) => set.anchors[i]), rows.map((i) => set.positives[i]), rows.map((i) => set.negatives[i])].slice(0, lossSides(set.loss));
  const targets = set.loss === 'cosent' || set.loss === 'cosine_mse' ? Float32Array.from(rows, (i) => set.targets[i]) : undefined;
  return { rows, sides, targets };
}

/** Each anchor's known positives in a set: the pairs MNRL must not take for negatives. */
export function knownPositives(set: PairSet): Map<number, Set<number>> {
  const known = new Map<number, Set<number>>();
  set.anchors.forEach((a, i) => {
    const mine = known.get(a);
    if (mine) mine.add(set.positives[i]);
    else known.set(a, new Set([set.positives[i]]));
  });
  return known;
}

/**
 * Hard negatives mined from a space (`vectors`, rows x dim unit rows): each anchor's `count`
 * nearest rows of the set's pool, leaving out the anchor and its known positives (false negatives).
 */
export function mineNegatives(set: PairSet, vectors: Float32Array, dim: number, known: Map<number, Set<number>>, count: number): Map<number, Int32Array> {
  const mined = new Map<number, Int32Array>();
  if (!set.pool?.length || count <= 0) return mined;
  const anchors = [...known.keys()];
  const most = Math.max(...[...known.values()].map((p) => p.size));
  const near = topk(gatherRows(vectors, dim, anchors), gatherRows(vectors, dim, set.pool), dim, { k: Math.min(set.pool.length, count + most + 1), metric: 'dot' });
  anchors.forEach((a, i) => {
    const mine = known.get(a)!;
    const rows = Array.from(near.indices.subarray(i * near.k, (i + 1) * near.k), (j) => set.pool![j]).filter((r) => r !== a && !mine.has(r));
    mined.set(a, Int32Array.from(rows.slice(0, count)));
  });
  return mined;
}

/**
 * MNRL's extra negatives for a batch: the pairs' own hard negatives (siblings) where the set has
 * them, one mined negative per anchor (drawn from `mined`, mineNegatives) when given, then up to
 * `count` distinct rows of the set's pool drawn with `pick`; none of them a text of the batch or a
 * known positive of one of its anchors (false negatives filtered out).
 */
export function poolNegatives(set: PairSet, batch: Batch, known: Map<number, Set<number>>, count: number, pick: (n: number) => number, mined?: Map<number, Int32Array>): number[] {
  const taken = new Set(batch.sides.flat());
  for (const a of batch.sides[0]) for (const p of known.get(a) ?? []) taken.add(p);
  const out: number[] = [];
  const add = (row: number) => {
    if (row < 0 || taken.has(row)) return;
    taken.add(row);
    out.push(row);
  };
  for (const i of batch.rows) add(set.negatives[i]);
  if (mined)
    for (const a of batch.sides[0]) {
      const mine = mined.get(a);
      if (mine?.length) add(mine[pick(mine.length)]);
    }
  if (!set.pool?.length || count <= 0) return out;
  // Pool rows come on top of the siblings; a few tries per row, since draws can hit taken rows.
  const wanted = out.length + count;
  for (let tries = 0; out.length < wanted && tries < wanted * 4; tries++) add(set.pool[pick(set.pool.length)]);
  return out;
}

/**
 * What an MNRL batch adds to a step, for both trainers: its extra negatives (poolNegatives) and the
 * loss options that place and mask them; nothing for the other losses.
 */
export function mnrlExtras(set: PairSet, batch: Batch, known: Map<number, Set<number>>, count: number, pick: (n: number) => number, mined?: Map<number, Int32Array>) {
  if (set.loss !== 'mnrl') return { extra: [] as number[], options: {} };
  const extra = poolNegatives(set, batch, known, count, pick, mined);
  return { extra, options: { anchors: batch.rows.length, excluded: excludedPositives(batch, known, extra.length) } };
}

/** MNRL's exclusion mask (anchors x candidates): 1 where candidate j is a known positive of anchor i. */
export function excludedPositives(batch: Batch, known: Map<number, Set<number>>, extra: number): Uint8Array {
  const [anchors, positives] = batch.sides;
  const candidates = positives.length + extra;
  const mask = new Uint8Array(anchors.length * candidates);
  anchors.forEach((a, i) => {
    const mine = known.get(a);
    positives.forEach((p, j) => {
      if (j !== i && (p === positives[i] || mine?.has(p))) mask[i * candidates + j] = 1;
    });
  });
  return mask;
}

const copyHead = (h: HeadParams): HeadParams => ({
  ...h,
  weight: h.weight.slice(),
  bias: h.bias.slice(),
  ...(h.adapter ? { adapter: { rank: h.adapter.rank, down: h.adapter.down.slice(), up: h.adapter.up.slice() } } : {}),
});
const copyMoments = (m: Moments): Moments => ({ m: m.m.map((a) => a.slice()), v: m.v.map((a) => a.slice()) });

/**
 * Trains the head from `initial`, or goes on from `resume` (a state onCheckpoint gave): a resumed
 * run ends with the same head, bit for bit, as one that was never stopped.
 */
export function trainHead(pooled: Pooled, train: PairSet[], validation: PairSet[], initial: HeadParams, config: TrainConfig, hooks: TrainHooks = {}, resume?: TrainState): TrainResult {
  if (!train.length) throw new RangeError('no training pairs: ingest and encode the data first');
  const head = copyHead(resume?.head ?? initial);
  const tensors = headTensors(head);
  const moments: Moments = resume ? copyMoments(resume.moments) : { m: tensors.map((t) => new Float32Array(t.length)), v: tensors.map((t) => new Float32Array(t.length)) };
  if (!config.trainDense && !head.adapter) throw new RangeError('trainDense false needs an adapter (adapterRank > 0): there would be nothing to train');
  // The step writes its gradients into the same arrays every time.
  const [gradWeight, gradBias, gradAdapterDown, gradAdapterUp] = tensors.map((t) => new Float32Array(t.length));
  const buffers = { gradWeight, gradBias, gradAdapterDown, gradAdapterUp };
  const next = seededRandom(resume ? resume.rng : config.seed);
  const pick = (n: number) => randomIndex(next, n);
  let best = resume
    ? { ...resume.best, head: copyHead(resume.best.head) }
    : { step: 0, mrr: meanMrr(evaluateSpace(embedAll(pooled, head), pooled.dim, pooled.refs, validation)), head: copyHead(head) };
  let stale = resume?.stale ?? 0;
  const losses: Record<string, number> = { ...resume?.losses };
  const known = train.map(knownPositives);
  let step = 0;
  for (step = (resume?.step ?? 0) + 1; step <= config.steps; step++) {
    const kind = (step - 1) % train.length;
    const set = train[kind];
    const batch = sampleBatch(set, config.batchSize, pick);
    if (!batch) continue;
    const { extra, options } = mnrlExtras(set, batch, known[kind], config.poolNegatives, pick);
    const x = gather(pooled, ...batch.sides, extra);
    const { targets } = batch;
    const out = headLossStep(set.loss, x, pooled.dim, head.weight, head.bias, head.dimOut, {
      ...options,
      scale: config.scale,
      margin: config.margin,
      targets,
      weight: set.weight,
      adapter: head.adapter,
      trainDense: config.trainDense,
      out: buffers,
    });
    losses[set.kind] = out.loss;
    // Gradients in headTensors' order; a frozen dense layer has none.
    const grads = [out.gradWeight, out.gradBias, out.gradAdapterDown, out.gradAdapterUp];
    clipGlobalNorm(grads, config.clipNorm);
    const schedule = lrSchedule(step, config.warmupSteps, config.steps);
    tensors.forEach((tensor, t) => {
      const grad = grads[t];
      if (!grad) return;
      // The bias has no weight decay; the adapter (t >= 2) has its own learning rate.
      const lr = (t >= 2 ? config.adapterLr : config.lr) * schedule;
      adamwStep(tensor, grad, moments.m[t], moments.v[t], { lr, weightDecay: t === 1 ? 0 : config.weightDecay, step });
    });
    hooks.onStep?.(step, config.steps, losses);
    if (step % config.evalEvery === 0 || step === config.steps) {
      const mrr = meanMrr(evaluateSpace(embedAll(pooled, head), pooled.dim, pooled.refs, validation));
      hooks.onEval?.(step, mrr);
      if (mrr > best.mrr) {
        best = { step, mrr, head: copyHead(head) };
        stale = 0;
      } else if (++stale >= config.patience) {
        return { head: best.head, bestStep: best.step, bestMrr: best.mrr, stepsRun: step, stoppedEarly: true };
      }
      hooks.onCheckpoint?.({
        step,
        head: copyHead(head),
        moments: copyMoments(moments),
        best: { ...best, head: copyHead(best.head) },
        stale,
        rng: next.state(),
        losses: { ...losses },
      });
    }
  }
  return { head: best.head, bestStep: best.step, bestMrr: best.mrr, stepsRun: step - 1, stoppedEarly: false };
}
