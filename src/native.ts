/**
 * Typed access to the native core (native/src). The addon is loaded here and nowhere else.
 * Search order: $LABORSPACE_NATIVE (a path to a .node file, e.g. a CUDA build), then
 * build/Release/laborspace_native.node in the package.
 *
 * Matrices are flat row-major Float32Arrays with an explicit `dim`; nothing is copied on the
 * way in. Errors are TypeError/RangeError with a `code` (ERR_LABORSPACE_*) naming the problem.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Metric = 'dot' | 'cosine';
export type Device = 'auto' | 'cpu' | 'cuda';
export type Isa = 'avx512' | 'avx2' | 'scalar';

export interface TopK {
  /** m x k row indices, best first; equal scores are ordered by ascending index. */
  indices: Int32Array;
  /** m x k scores matching `indices`. */
  scores: Float32Array;
  /** Results per query: min(requested k, eligible rows). */
  k: number;
  device: 'cpu' | 'cuda';
}

export interface TopKOptions {
  k: number;
  /** 'cosine' (default) or 'dot' (for rows already normalised: one pass less). */
  metric?: Metric;
  /** One byte per database row; rows with 0 are skipped (e.g. other entity types). */
  mask?: Uint8Array;
  /**
   * 'auto' (default) uses a GPU for large batches when this build has CUDA and a device answers,
   * and the CPU where the GPU fails; 'cuda' throws ERR_LABORSPACE_DEVICE then.
   */
  device?: Device;
}

export interface NativeInfo {
  isa: Isa;
  isas: Isa[];
  threads: number;
  cuda: { compiled: boolean; devices: number; name?: string };
}

interface Binding {
  info(): NativeInfo;
  setIsa(isa: string): void;
  setThreads(n: number): void;
  keepKernelsOnThisThread(): void;
  normalize(x: Float32Array, dim: number, inPlace: boolean): Float32Array;
  combine(x: Float32Array, dim: number, indices: Int32Array, weights: Float32Array, offsets: Int32Array): Float32Array;
  similarity(q: Float32Array, x: Float32Array, dim: number, metric: string): Float32Array;
  similarityAsync(q: Float32Array, x: Float32Array, dim: number, metric: string): Promise<Float32Array>;
  topk(q: Float32Array, x: Float32Array, dim: number, k: number, metric: string, mask?: Uint8Array, device?: string): TopK;
  topkAsync(q: Float32Array, x: Float32Array, dim: number, k: number, metric: string, mask?: Uint8Array, device?: string): Promise<TopK>;
  quantize(x: Float32Array, dim: number): QuantizedRows;
  topkQuantized(q: Float32Array, codes: Int8Array, scales: Float32Array, x: Float32Array, dim: number, k: number, candidates: number, projection?: Float32Array): TopK;
  topkQuantizedAsync(q: Float32Array, codes: Int8Array, scales: Float32Array, x: Float32Array, dim: number, k: number, candidates: number, projection?: Float32Array): Promise<TopK>;
  matmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number, transposeA: boolean, transposeB: boolean, out?: Outputs): Float32Array;
  headForward(x: Float32Array, dimIn: number, weight: Float32Array, bias: Float32Array, dimOut: number, down?: Float32Array, up?: Float32Array, rank?: number): HeadOutput;
  headBackward(x: Float32Array, hidden: Float32Array, embeddings: Float32Array, gradEmbeddings: Float32Array, dimIn: number, dimOut: number, down?: Float32Array, up?: Float32Array, rank?: number): HeadGradients;
  mnrlLoss(a: Float32Array, p: Float32Array, dim: number, scale: number, symmetric: boolean, out?: Outputs, excluded?: Uint8Array): LossResult & { gradAnchors: Float32Array; gradPositives: Float32Array };
  distillLoss(e: Float32Array, teacher: Float32Array, dim: number, weight: number, out?: Outputs): LossResult & { grad: Float32Array };
  tripletLoss(a: Float32Array, p: Float32Array, n: Float32Array, dim: number, margin: number, euclidean: boolean, out?: Outputs): LossResult & {
    gradAnchors: Float32Array;
    gradPositives: Float32Array;
    gradNegatives: Float32Array;
  };
  cosineMseLoss(a: Float32Array, b: Float32Array, targets: Float32Array, dim: number, out?: Outputs): PairLossResult;
  cosentLoss(a: Float32Array, b: Float32Array, targets: Float32Array, dim: number, scale: number, out?: Outputs): PairLossResult;
  headLossStep(
    loss: string,
    x: Float32Array,
    dimIn: number,
    weight: Float32Array,
    bias: Float32Array,
    dimOut: number,
    scale: number,
    margin: number,
    targets: Float32Array | undefined,
    lossWeight: number,
    device: string,
    down: Float32Array | undefined,
    up: Float32Array | undefined,
    rank: number | undefined,
    trainDense: boolean,
    out: Outputs | undefined,
    anchors: number | undefined,
    excluded: Uint8Array | undefined,
  ): LossResult & Partial<HeadGradients> & { device: 'cpu' | 'cuda' };
  adamwStep(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  probeBandwidth(buffer: Float32Array, threads: number): number;
  probeFmaPeak(threads: number): number;
  adamwRows(params: Float32Array, rowWidth: number, ids: Int32Array, gradRows: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  NativeEncoder: new (dims: EncoderDims, timing: Float32Array, device?: Device) => NativeEncoderBinding;
}

interface NativeEncoderBinding {
  layout(): EncoderTensorSpec[];
  device(): 'cpu' | 'cuda';
  forward(params: Float32Array, tokens: Int32Array, offsets: Int32Array, down?: Float32Array, up?: Float32Array, rank?: number, recompute?: boolean): Float32Array;
  pooled(): Float32Array;
  maskedTokenStep(params: Float32Array, tokens: Int32Array, offsets: Int32Array, positions: Int32Array, targets: Int32Array, head: Float32Array, gradOut: Float32Array, gradHead: Float32Array, recompute: boolean): { loss: number };
  backward(params: Float32Array, gradEmbeddings: Float32Array, gradOut: Float32Array, down?: Float32Array, up?: Float32Array, rank?: number, adapterOut?: Outputs): EncoderGradients;
  lossStep(
    loss: string,
    params: Float32Array,
    tokens: Int32Array,
    offsets: Int32Array,
    scale: number,
    margin: number,
    targets: Float32Array | undefined,
    lossWeight: number,
    gradOut: Float32Array,
    down: Float32Array | undefined,
    up: Float32Array | undefined,
    rank: number | undefined,
    adapterOut: Outputs | undefined,
    recompute: boolean,
    anchors: number | undefined,
    excluded: Uint8Array | undefined,
    teacher: Float32Array | undefined,
    distill: number | undefined,
  ): EncoderGradients & { loss: number; embeddings: Float32Array };
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function loadBinding(): Binding {
  const candidates = [process.env.LABORSPACE_NATIVE, join(packageRoot, 'build', 'Release', 'laborspace_native.node')]
    .filter((p): p is string => Boolean(p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `laborspace: native addon not found (looked in ${candidates.join(', ')}); run \`npm run build:native\` in ${packageRoot}`,
    );
  }
  return createRequire(import.meta.url)(found) as Binding;
}

const binding = loadBinding();

/** What the native core runs on: the chosen ISA, those the CPU supports, threads and CUDA. */
export function nativeInfo(): NativeInfo {
  return binding.info();
}

/** Forces an instruction set (tests compare each with the scalar path). Throws if unsupported. */
export function setIsa(isa: Isa): void {
  binding.setIsa(isa);
}

/** Threads the kernels use for large inputs (default: all cores, or $LABORSPACE_THREADS). */
export function setThreads(n: number): void {
  binding.setThreads(n);
}

/**
 * From now on, this thread's async kernel calls run on it (their promises settle at once) and
 * their parallel parts on threads it starts, not on libuv's pool: for a worker thread whose lower
 * priority its kernels should keep (Linux sets niceness per thread, started threads inherit it),
 * without lowering the pool's, which serves the rest of the process. Cannot be undone.
 */
export function keepKernelsOnThisThread(): void {
  binding.keepKernelsOnThisThread();
}

/** L2-normalises each row; zero rows stay zero. Returns a new array unless `inPlace`. */
export function normalize(vectors: Float32Array, dim: number, options: { inPlace?: boolean } = {}): Float32Array {
  return binding.normalize(vectors, dim, options.inPlace === true);
}

/** m x n matrix of scores between each query row and each database row. */
export function similarity(queries: Float32Array, database: Float32Array, dim: number, metric: Metric = 'cosine'): Float32Array {
  return binding.similarity(queries, database, dim, metric);
}

/** `similarity` on the libuv thread pool, off the event loop. */
export function similarityAsync(
  queries: Float32Array,
  database: Float32Array,
  dim: number,
  metric: Metric = 'cosine',
): Promise<Float32Array> {
  return binding.similarityAsync(queries, database, dim, metric);
}

/** n x M cosine of each vector with each axis (SemAxis-style positions). */
export function project(vectors: Float32Array, axes: Float32Array, dim: number): Float32Array {
  return binding.similarity(vectors, axes, dim, 'cosine');
}

/** `project` on the libuv thread pool, off the event loop. */
export function projectAsync(vectors: Float32Array, axes: Float32Array, dim: number): Promise<Float32Array> {
  return binding.similarityAsync(vectors, axes, dim, 'cosine');
}

/** Exact k nearest database rows for each query. */
export function topk(queries: Float32Array, database: Float32Array, dim: number, options: TopKOptions): TopK {
  return binding.topk(queries, database, dim, options.k, options.metric ?? 'cosine', options.mask, options.device ?? 'auto');
}

/** `topk` on the libuv thread pool, off the event loop. */
export function topkAsync(queries: Float32Array, database: Float32Array, dim: number, options: TopKOptions): Promise<TopK> {
  return binding.topkAsync(queries, database, dim, options.k, options.metric ?? 'cosine', options.mask, options.device ?? 'auto');
}

/** Linear combinations in CSR form: output c is the sum of weights[t] * row indices[t] over offsets[c]..offsets[c+1]. */
export interface Combinations {
  indices: Int32Array;
  weights: Float32Array;
  offsets: Int32Array;
}

/** One output row per combination (the engine of vector arithmetic). */
export function combine(vectors: Float32Array, dim: number, combinations: Combinations): Float32Array {
  return binding.combine(vectors, dim, combinations.indices, combinations.weights, combinations.offsets);
}

/** Mean of each subset of rows; an empty subset is an error. */
export function meanRows(vectors: Float32Array, dim: number, subsets: readonly (readonly number[])[]): Float32Array {
  const offsets = new Int32Array(subsets.length + 1);
  subsets.forEach((subset, i) => {
    if (subset.length === 0) throw new RangeError(`subset ${i} is empty: a mean needs at least one row`);
    offsets[i + 1] = offsets[i] + subset.length;
  });
  const indices = Int32Array.from(subsets.flat());
  const weights = Float32Array.from(subsets.flatMap((s) => s.map(() => 1 / s.length)));
  return combine(vectors, dim, { indices, weights, offsets });
}

/** Rows as symmetric int8 codes with one scale per row (codes = round(x / scale), scale = max|x| / 127). */
export interface QuantizedRows {
  codes: Int8Array;
  scales: Float32Array;
  /**
   * When the codes are of the rows projected to r dimensions (optionally centred first): the
   * projection, r x dim with orthonormal rows. The queries are projected by it before the scan.
   */
  projection?: Float32Array;
}

export function quantize(vectors: Float32Array, dim: number): QuantizedRows {
  return binding.quantize(vectors, dim);
}

/**
 * Top-k by dot product that scans int8 codes (a quarter of the bytes, r / 4dim of them when the
 * codes are projected) for the `candidates` best rows, then scores those exactly against the fp32
 * `database`. With enough candidates it returns the exact answer; the index measures how many it
 * needs.
 */
export function topkQuantized(
  queries: Float32Array,
  quantized: QuantizedRows,
  database: Float32Array,
  dim: number,
  options: { k: number; candidates: number },
): TopK {
  return binding.topkQuantized(queries, quantized.codes, quantized.scales, database, dim, options.k, options.candidates, quantized.projection);
}

/** topkQuantized on the libuv pool, off the event loop. */
export function topkQuantizedAsync(queries: Float32Array, quantized: QuantizedRows, database: Float32Array, dim: number, options: { k: number; candidates: number }): Promise<TopK> {
  return binding.topkQuantizedAsync(queries, quantized.codes, quantized.scales, database, dim, options.k, options.candidates, quantized.projection);
}

// ---- Training kernels (native/src/training.cpp) ----

export interface HeadOutput {
  /** tanh(x W^T + bias), kept for the backward pass. */
  hidden: Float32Array;
  /** The embeddings: `hidden` (plus the adapter's output) with its rows L2-normalised. */
  embeddings: Float32Array;
}

/**
 * The head's optional low-rank residual adapter after tanh: u = h + (h down^T) up^T, with down
 * rank x dimOut and up dimOut x rank, before the normalisation.
 */
export interface HeadAdapter {
  rank: number;
  down: Float32Array;
  up: Float32Array;
}

export interface HeadGradients {
  /** dL/dW, laid out as W: dimOut x dimIn. */
  gradWeight: Float32Array;
  gradBias: Float32Array;
  /** With an adapter: dL/ddown and dL/dup, laid out as they are. */
  gradAdapterDown?: Float32Array;
  gradAdapterUp?: Float32Array;
}

export interface LossResult {
  loss: number;
}

export interface PairLossResult extends LossResult {
  gradLeft: Float32Array;
  gradRight: Float32Array;
}

export type PairOutputs = Partial<Omit<PairLossResult, 'loss'>>;

/** Caller-given output arrays, in the order the binding takes them (a gap: a new array). */
type Outputs = (Float32Array | undefined)[];

/**
 * The `out` option of the training kernels as the binding's list. The arrays are written in place
 * and returned as the result's; they must not share memory with the inputs.
 */
function outputs<K extends string>(out: Partial<Record<K, Float32Array>> | undefined, names: readonly K[]): Outputs | undefined {
  return out && names.map((n) => out[n]);
}

/**
 * The m x n product op(a) op(b), row-major: a holds m x k values (k x m when transposeA), b holds
 * k x n (n x k when transposeB). `out.product` (m x n values) is written in place of a new array.
 */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  shape: { m: number; n: number; k: number; transposeA?: boolean; transposeB?: boolean; out?: { product?: Float32Array } },
): Float32Array {
  return binding.matmul(a, b, shape.m, shape.n, shape.k, shape.transposeA === true, shape.transposeB === true, outputs(shape.out, ['product']));
}

/** The trainable head: embeddings = normalize(tanh(x W^T + bias) (+ adapter)), W stored dimOut x dimIn. */
export function headForward(x: Float32Array, dimIn: number, weight: Float32Array, bias: Float32Array, dimOut: number, adapter?: HeadAdapter): HeadOutput {
  return binding.headForward(x, dimIn, weight, bias, dimOut, adapter?.down, adapter?.up, adapter?.rank);
}

/** The losses of the training step. */
export type LossKind = 'mnrl' | 'triplet' | 'cosine_mse' | 'cosent';

export interface HeadLossStepOptions {
  /** MNRL and CoSENT scale (1 / temperature). */
  scale?: number;
  /** Triplet margin (cosine distance). */
  margin?: number;
  /** One target per pair: the cosine MSE and CoSENT losses. */
  targets?: Float32Array;
  /** Multiplies the gradients (the loss is reported unweighted). */
  weight?: number;
  /** 'auto' (CUDA when this build has it and a GPU answers; the CPU where the GPU fails), 'cpu' or 'cuda'. */
  device?: 'auto' | 'cpu' | 'cuda';
  /** The head's low-rank adapter, whose gradients are then returned too. */
  adapter?: HeadAdapter;
  /** false: the dense layer is frozen (no dL/dW or dL/dbias, and their product is skipped). Default true. */
  trainDense?: boolean;
  /** Arrays to write the gradients into instead of new ones (reused across training steps). */
  out?: Partial<HeadGradients>;
  /** MNRL: the anchors' count, when x goes on past their positives with extra negatives (those run on the CPU). */
  anchors?: number;
  /** MNRL: anchors x candidates bytes, 1 where a candidate is a known positive of the anchor (not a negative). */
  excluded?: Uint8Array;
  /** Unit rows of the pretrained space, one per text: adds distillLoss weighted `distill`. */
  teacher?: Float32Array;
  distill?: number;
}

/**
 * The head and a loss, forward and backward, over a batch whose sides are stacked in x: anchors,
 * positives, and for the triplet loss negatives, each the same number of rows of dimIn. The head
 * runs once over all sides and its backward pass once over their stacked gradients.
 */
export function headLossStep(loss: LossKind, x: Float32Array, dimIn: number, weight: Float32Array, bias: Float32Array, dimOut: number, options: HeadLossStepOptions = {}) {
  const { adapter } = options;
  return binding.headLossStep(loss, x, dimIn, weight, bias, dimOut, options.scale ?? 20, options.margin ?? 0.25, options.targets, options.weight ?? 1, options.device ?? 'auto', adapter?.down, adapter?.up, adapter?.rank, options.trainDense !== false, outputs(options.out, ['gradWeight', 'gradBias', 'gradAdapterDown', 'gradAdapterUp']), options.anchors, options.excluded);
}

/** The head's gradients (dL/dW, dL/dbias, and the adapter's) from dL/dembeddings. */
export function headBackward(x: Float32Array, out: HeadOutput, gradEmbeddings: Float32Array, dimIn: number, dimOut: number, adapter?: HeadAdapter): HeadGradients {
  return binding.headBackward(x, out.hidden, out.embeddings, gradEmbeddings, dimIn, dimOut, adapter?.down, adapter?.up, adapter?.rank);
}

/**
 * Multiple-negatives ranking loss (in-batch negatives) on unit rows: cross-entropy of
 * scale * a_i . p_j (scale = 1 / temperature, ~20) with p_i the right answer; `symmetric` also
 * ranks the anchors for each positive. Prefer it for (anchor, positive) pairs without labels.
 * `positives` may go on past the anchors' count with extra negatives; `excluded` (anchors x
 * candidates bytes) marks the candidates that are not negatives of an anchor (its known positives).
 */
export function mnrlLoss(
  anchors: Float32Array,
  positives: Float32Array,
  dim: number,
  options: { scale?: number; symmetric?: boolean; excluded?: Uint8Array; out?: { gradAnchors?: Float32Array; gradPositives?: Float32Array } } = {},
) {
  return binding.mnrlLoss(anchors, positives, dim, options.scale ?? 20, options.symmetric === true, outputs(options.out, ['gradAnchors', 'gradPositives']), options.excluded);
}

/**
 * Distillation toward a teacher space: weight x the mean over pairs i != j of
 * (e_i . e_j - t_i . t_j)^2 over unit rows, with its gradient with respect to e. It keeps the
 * pretrained space's similarities among a batch's texts while a relation loss moves them.
 */
export function distillLoss(embeddings: Float32Array, teacher: Float32Array, dim: number, options: { weight?: number; out?: { grad?: Float32Array } } = {}) {
  return binding.distillLoss(embeddings, teacher, dim, options.weight ?? 1, outputs(options.out, ['grad']));
}

/** Triplet loss: mean max(0, dist(a, p) - dist(a, n) + margin), dist = 1 - cosine or Euclidean. For hard negatives. */
export function tripletLoss(
  anchors: Float32Array,
  positives: Float32Array,
  negatives: Float32Array,
  dim: number,
  options: { margin?: number; euclidean?: boolean; out?: { gradAnchors?: Float32Array; gradPositives?: Float32Array; gradNegatives?: Float32Array } } = {},
) {
  return binding.tripletLoss(anchors, positives, negatives, dim, options.margin ?? 0.25, options.euclidean === true, outputs(options.out, ['gradAnchors', 'gradPositives', 'gradNegatives']));
}

/** Cosine-similarity loss: mean (a_i . b_i - target_i)^2 on unit rows. For weighted relations with absolute targets. */
export function cosineMseLoss(left: Float32Array, right: Float32Array, targets: Float32Array, dim: number, options: { out?: PairOutputs } = {}): PairLossResult {
  return binding.cosineMseLoss(left, right, targets, dim, outputs(options.out, ['gradLeft', 'gradRight']));
}

/** CoSENT: log(1 + sum over target_i > target_j of exp(scale (cos_j - cos_i))). For weighted relations where only the order of the targets matters. */
export function cosentLoss(left: Float32Array, right: Float32Array, targets: Float32Array, dim: number, options: { scale?: number; out?: PairOutputs } = {}): PairLossResult {
  return binding.cosentLoss(left, right, targets, dim, options.scale ?? 20, outputs(options.out, ['gradLeft', 'gradRight']));
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Steps taken so far plus one (bias correction). */
  step: number;
}

/** One AdamW step in place on params, with moment buffers m and v (same length). */
export function adamwStep(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, o: AdamWOptions): void {
  binding.adamwStep(params, grads, m, v, o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8, o.weightDecay ?? 0.01, o.step);
}

/** Streaming read bandwidth in bytes/s over `buffer`, the data a benchmark scans (its memory bound). */
export function probeBandwidth(buffer: Float32Array, threads: number): number {
  return binding.probeBandwidth(buffer, threads);
}

/** fp32 FMA throughput in FLOP/s of the active ISA (benchmarks' compute bound). */
export function probeFmaPeak(threads: number): number {
  return binding.probeFmaPeak(threads);
}

/** AdamW on some rows of a row-major table only: the embedding table's sparse gradient (lazy AdamW). */
export function adamwRows(params: Float32Array, rowWidth: number, ids: Int32Array, gradRows: Float32Array, m: Float32Array, v: Float32Array, o: AdamWOptions): void {
  binding.adamwRows(params, rowWidth, ids, gradRows, m, v, o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8, o.weightDecay ?? 0.01, o.step);
}

/** One transformer layer's sizes (native/src/encoder.h). */
export interface EncoderLayerDims {
  widthIn: number;
  widthOut: number;
  heads: number;
  ffn: number;
  /** The attention residual goes through a dense widthIn -> widthOut (required when they differ). */
  residualProjection: boolean;
  queryScale: number;
}

export interface EncoderDims {
  vocab: number;
  embed: number;
  maxTokens: number;
  headOut: number;
  lnEps?: number;
  layers: EncoderLayerDims[];
}

/** One tensor of the parameter arena: rows x cols floats from `offset`. */
export interface EncoderTensorSpec {
  name: string;
  offset: number;
  rows: number;
  cols: number;
}

export interface EncoderGradients {
  /** The embedding table's gradient, only for the tokens in the batch: ids ascending, one row each. */
  embeddingIds: Int32Array;
  embeddingRows: Float32Array;
  gradAdapterDown?: Float32Array;
  gradAdapterUp?: Float32Array;
}

/** A batch of texts as token ids packed end to end: text i is tokens[offsets[i] .. offsets[i + 1]). */
export interface PackedTokens {
  tokens: Int32Array;
  offsets: Int32Array;
}

export interface EncoderStepOptions {
  scale?: number;
  margin?: number;
  targets?: Float32Array;
  weight?: number;
  adapter?: HeadAdapter;
  /** Drop the FFN hidden layers and attention probabilities after the forward pass; recompute them in the backward pass. */
  recompute?: boolean;
  /** MNRL: the anchors' count, when the texts go on past their positives with extra negatives. */
  anchors?: number;
  /** MNRL: anchors x candidates bytes, 1 where a candidate is a known positive of the anchor (not a negative). */
  excluded?: Uint8Array;
  /** Unit rows of the pretrained space, one per text: adds distillLoss weighted `distill`. */
  teacher?: Float32Array;
  distill?: number;
}

/**
 * The whole sentence encoder in the native core: forward, backward and a training step over a
 * flat parameter arena (`layout`). Keeps the last forward pass's activations for the backward.
 * `device`: 'auto' (default) runs on the GPU where the CUDA build finds one, 'cpu', or 'cuda'
 * (ERR_LABORSPACE_DEVICE without one). Steps with an adapter and masked-token steps run on the CPU;
 * the first GPU lossStep is checked against the CPU's, and where they differ the encoder stays on
 * the CPU (with a warning on stderr). Where the GPU itself fails (out of memory, a lost device), an
 * 'auto' encoder says so on stderr and moves to the CPU for good, taking the call again there (a
 * failed `backward` throws ERR_LABORSPACE_DEVICE, as its forward pass's activations are lost: run
 * forward again); a 'cuda' one throws ERR_LABORSPACE_DEVICE and keeps the GPU.
 */
export class Encoder {
  readonly #native: NativeEncoderBinding;
  readonly dims: EncoderDims;
  readonly layout: EncoderTensorSpec[];
  readonly paramCount: number;

  constructor(dims: EncoderDims, timing: Float32Array, options: { device?: Device } = {}) {
    this.#native = new binding.NativeEncoder(dims, timing, options.device ?? 'auto');
    this.dims = dims;
    this.layout = this.#native.layout();
    const last = this.layout[this.layout.length - 1];
    this.paramCount = last.offset + last.rows * last.cols;
  }

  /** Where forward, backward and lossStep run now: 'cpu' or 'cuda'. */
  get device(): 'cpu' | 'cuda' {
    return this.#native.device();
  }

  /** The arena's tensor called `name`, as a view into `params`. */
  tensor(params: Float32Array, name: string): Float32Array {
    const spec = this.layout.find((t) => t.name === name);
    if (!spec) throw new RangeError(`the encoder has no tensor ${name}`);
    return params.subarray(spec.offset, spec.offset + spec.rows * spec.cols);
  }

  /** Unit embeddings (texts x headOut) of a packed batch. */
  forward(params: Float32Array, batch: PackedTokens, options: { adapter?: HeadAdapter; recompute?: boolean } = {}): Float32Array {
    const a = options.adapter;
    return this.#native.forward(params, batch.tokens, batch.offsets, a?.down, a?.up, a?.rank, options.recompute ?? false);
  }

  /** The mean-pooled token states of the last forward pass (texts x the last layer's width): what the head read. */
  pooled(): Float32Array {
    return this.#native.pooled();
  }

  /** Gradients for dL/de of the last forward pass: gradOut (arena-sized) is overwritten but for the embeddings. */
  backward(params: Float32Array, gradEmbeddings: Float32Array, gradOut: Float32Array, adapter?: HeadAdapter): EncoderGradients {
    return this.#native.backward(params, gradEmbeddings, gradOut, adapter?.down, adapter?.up, adapter?.rank);
  }

  /** The masked-token output layer's size: [projection (last width x embed), its bias (embed), the vocabulary's bias (vocab)]. */
  get maskedHeadSize(): number {
    const d = this.dims;
    return d.layers[d.layers.length - 1].widthOut * d.embed + d.embed + d.vocab;
  }

  /**
   * One masked-token step (masked_token_step, native/src/encoder.cpp): forward over the masked batch, the mean
   * cross-entropy of the original tokens at `positions` (packed indices) through the output layer
   * tied to the token embeddings, backward. gradOut gets every arena tensor's gradient, the
   * embedding table's included (dense), the head's zero; gradHead the output layer's.
   */
  maskedTokenStep(params: Float32Array, batch: PackedTokens, positions: Int32Array, targets: Int32Array, head: Float32Array, gradOut: Float32Array, gradHead: Float32Array, o: { recompute?: boolean } = {}): number {
    return this.#native.maskedTokenStep(params, batch.tokens, batch.offsets, positions, targets, head, gradOut, gradHead, o.recompute ?? false).loss;
  }

  /** Forward, loss and backward over a batch whose texts are the loss's sides stacked (anchors, positives, negatives; MNRL: extra negatives after the positives, with `anchors`). */
  lossStep(loss: LossKind, params: Float32Array, batch: PackedTokens, gradOut: Float32Array, o: EncoderStepOptions = {}) {
    const a = o.adapter;
    return this.#native.lossStep(loss, params, batch.tokens, batch.offsets, o.scale ?? 20, o.margin ?? 0.25, o.targets, o.weight ?? 1, gradOut, a?.down, a?.up, a?.rank, undefined, o.recompute ?? false, o.anchors, o.excluded, o.teacher, o.distill ?? 0);
  }
}
