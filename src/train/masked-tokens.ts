/**
 * The masked-token stage (the seed paper's "context learning"): before relation training, the
 * encoder learns to predict masked tokens of the entities' own descriptions through an output
 * layer tied to its token embeddings, so that it has read the labour market's vocabulary before
 * it is asked to relate it. The output layer (a projection to the embedding width and a bias per
 * vocabulary row) is dropped afterwards; only the encoder's weights go on to relation training.
 */
import { adamwStep, type Encoder, type PackedTokens } from '../native.js';
import { packTokens } from '../encoder/native-use-lite.js';
import { randomIndex, seededRandom } from '../util/random.js';
import { adamwTensor, layerLrFactors } from './encoder-trainer.js';
import { clipGlobalNorm, lrSchedule } from './trainer.js';

/** Universal Sentence Encoder lite's 'extra_token_id_1': a reserved piece the tokenizer never produces. */
export const USE_LITE_MASK_TOKEN = 3;
/** Its first ordinary piece (0-5 are reserved): random replacements are drawn from here on. */
export const USE_LITE_FIRST_PIECE = 6;

export interface MaskedTokenConfig {
  steps: number;
  /** Texts per step. */
  texts: number;
  /** Share of each text's tokens to predict (at least one per text). */
  maskShare: number;
  /** Peak learning rate at the top layer, layer-wise decay below it; the output layer, new, trains at 10x. */
  lr: number;
  layerDecay: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  seed: number;
  recompute: boolean;
  maskToken: number;
  firstPiece: number;
}

export interface MaskedBatch {
  batch: PackedTokens;
  /** Packed indices of the predicted tokens, ascending. */
  positions: Int32Array;
  /** The tokens there before masking. */
  targets: Int32Array;
}

/**
 * BERT's recipe on token lists: `share` of each text's tokens (at least one) are predicted; of
 * those, 80% become the mask token, 10% a random piece, 10% stay as they are (so the encoder
 * cannot tell the predicted tokens from the mask alone).
 */
export function maskTokens(lists: readonly ArrayLike<number>[], share: number, vocab: number, maxTokens: number, config: { maskToken: number; firstPiece: number }, next: () => number): MaskedBatch {
  if (!(share > 0 && share < 1)) throw new RangeError(`the masked share must be between 0 and 1, got ${share}`);
  if (!(config.firstPiece < vocab)) throw new RangeError(`the first piece ${config.firstPiece} is outside the vocabulary of ${vocab}`);
  const batch = packTokens(lists, maxTokens);
  const positions: number[] = [];
  const targets: number[] = [];
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const start = batch.offsets[s], length = batch.offsets[s + 1] - start;
    const count = Math.max(1, Math.round(share * length));
    // A partial Fisher-Yates shuffle of the text's positions picks `count` of them.
    const order = Array.from({ length }, (_, i) => i);
    for (let i = 0; i < count; i++) {
      const j = i + randomIndex(next, length - i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const i of order.slice(0, count).sort((a, b) => a - b)) {
      const at = start + i;
      positions.push(at);
      targets.push(batch.tokens[at]);
      const roll = (next() + 1) / 2;
      if (roll < 0.8) batch.tokens[at] = config.maskToken;
      else if (roll < 0.9) batch.tokens[at] = config.firstPiece + randomIndex(next, vocab - config.firstPiece);
    }
  }
  return { batch, positions: Int32Array.from(positions), targets: Int32Array.from(targets) };
}

/**
 * The output layer at its start: a zero projection, and each vocabulary row's bias the log of its
 * share of the texts' tokens (add-one smoothed), so the first prediction is the corpus's unigram
 * distribution. A random projection instead starts far above uniform (loss 17-19 against log 8002
 * = 9 on the bundled texts: the token embeddings are long), and its first gradients into the
 * encoder are noise.
 */
export function initialMaskedHead(encoder: Encoder, tokens: readonly ArrayLike<number>[]): Float32Array {
  const { vocab } = encoder.dims;
  const head = new Float32Array(encoder.maskedHeadSize);
  const counts = new Float64Array(vocab).fill(1);
  let total = vocab;
  for (const list of tokens)
    for (let i = 0; i < list.length; i++) {
      counts[list[i]]++;
      total++;
    }
  const bias = head.subarray(head.length - vocab); // the vocabulary's bias ends the layer
  for (let v = 0; v < vocab; v++) bias[v] = Math.log(counts[v] / total);
  return head;
}

export interface MaskedTokenResult {
  params: Float32Array;
  secondsPerStep: number;
  /** Mean loss of the first and the last tenth of the steps. */
  firstLoss: number;
  lastLoss: number;
}

/**
 * Runs the stage on `params` (the pretrained arena; not modified) over every text of `tokens`,
 * sampled with replacement. Deterministic for a seed and a thread count. The sentence head (the
 * tanh layer) gets no gradient here and stays as it is.
 */
export function trainMaskedTokens(encoder: Encoder, tokens: readonly Int32Array[], start: Float32Array, config: MaskedTokenConfig, onStep?: (step: number, steps: number, loss: number) => void): MaskedTokenResult {
  if (!tokens.length) throw new RangeError('no texts to learn from: ingest the data first');
  if (!(Number.isInteger(config.steps) && config.steps > 0)) throw new RangeError(`masked-token steps must be a positive integer, got ${config.steps}`);
  if (!(Number.isInteger(config.texts) && config.texts > 0)) throw new RangeError(`masked-token texts per step must be a positive integer, got ${config.texts}`);
  if (start.length !== encoder.paramCount) throw new RangeError(`start has ${start.length} values, the encoder ${encoder.paramCount}`);
  const params = start.slice();
  const m = new Float32Array(params.length), v = new Float32Array(params.length), grad = new Float32Array(params.length);
  const head = initialMaskedHead(encoder, tokens);
  const headM = new Float32Array(head.length), headV = new Float32Array(head.length), gradHead = new Float32Array(head.length);
  const next = seededRandom(config.seed);
  const factors = layerLrFactors(encoder, config.layerDecay);
  const losses: number[] = [];
  let seconds = 0;
  for (let step = 1; step <= config.steps; step++) {
    const started = performance.now();
    const lists = Array.from({ length: config.texts }, () => tokens[randomIndex(next, tokens.length)]);
    const masked = maskTokens(lists, config.maskShare, encoder.dims.vocab, encoder.dims.maxTokens, config, next);
    const loss = encoder.maskedTokenStep(params, masked.batch, masked.positions, masked.targets, head, grad, gradHead, { recompute: config.recompute });
    losses.push(loss);
    // Clip by the global norm (the sentence head's gradient is zero here, so it adds nothing).
    clipGlobalNorm([grad, gradHead], config.clipNorm);
    const schedule = lrSchedule(step, config.warmupSteps, config.steps);
    encoder.layout.forEach((t, i) => {
      if (!t.name.startsWith('head.')) adamwTensor(t, { params, grad, m, v }, config.lr * factors[i] * schedule, config.weightDecay, step);
    });
    adamwStep(head, gradHead, headM, headV, { lr: 10 * config.lr * schedule, weightDecay: 0, step });
    if (step > 1) seconds += (performance.now() - started) / 1000;
    onStep?.(step, config.steps, loss);
  }
  const tenth = Math.max(1, Math.floor(losses.length / 10));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { params, secondsPerStep: config.steps > 1 ? seconds / (config.steps - 1) : 0, firstLoss: mean(losses.slice(0, tenth)), lastLoss: mean(losses.slice(-tenth)) };
}
