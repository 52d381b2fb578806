/**
 * Universal Sentence Encoder lite in the native core (native/src/encoder.cpp): the pretrained
 * weights as a flat parameter arena, and batched embedding of tokenized texts through it. The
 * whole-encoder fine-tune trains this arena; the ONNX model of a fine-tuned run is built back
 * from it (weightsWithArena).
 */
import { Encoder, type HeadAdapter, type PackedTokens } from '../native.js';
import { useLitePackageDir } from './model-cache.js';
import { readTfjsWeights, type TfjsTensor } from './tfjs-weights.js';
import { useLiteArena, useLiteEncoderDims, useLiteTiming, USE_LITE_MAX_TOKENS } from './use-lite.js';

export interface NativeUseLite {
  encoder: Encoder;
  /** The pretrained parameters in the encoder's layout. */
  params: Float32Array;
  /** The timing signal the encoder adds (max tokens x 256). */
  timing: Float32Array;
  weights: Map<string, TfjsTensor>;
}

export function loadNativeUseLite(): NativeUseLite {
  const weights = readTfjsWeights(useLitePackageDir());
  const timing = useLiteTiming(weights);
  const encoder = new Encoder(useLiteEncoderDims(weights), timing);
  return { encoder, params: useLiteArena(weights, encoder.layout), timing, weights };
}

/** Token lists packed end to end, each cut to the model's limit. */
export function packTokens(lists: readonly ArrayLike<number>[], maxTokens = USE_LITE_MAX_TOKENS): PackedTokens {
  const offsets = new Int32Array(lists.length + 1);
  lists.forEach((l, i) => (offsets[i + 1] = offsets[i] + Math.min(l.length, maxTokens)));
  const tokens = new Int32Array(offsets[lists.length]);
  lists.forEach((l, i) => {
    for (let j = 0; j < offsets[i + 1] - offsets[i]; j++) tokens[offsets[i] + j] = l[j];
  });
  return { tokens, offsets };
}

/**
 * Unit embeddings of every token list (rows in input order), in batches of about `batchTokens`
 * tokens, shortest texts first (neighbours in length share a batch); `pooled`, when given,
 * receives each text's mean-pooled states (the head's input).
 */
export function embedTokenLists(
  encoder: Encoder,
  params: Float32Array,
  lists: readonly ArrayLike<number>[],
  options: { adapter?: HeadAdapter; batchTokens?: number; onProgress?: (done: number, total: number) => void; pooled?: Float32Array } = {},
): Float32Array {
  const dim = encoder.dims.headOut;
  const width = encoder.dims.layers[encoder.dims.layers.length - 1].widthOut;
  if (options.pooled && options.pooled.length !== lists.length * width) throw new RangeError(`pooled must hold ${lists.length} x ${width} values`);
  const out = new Float32Array(lists.length * dim);
  const order = lists.map((_, i) => i).sort((a, b) => lists[a].length - lists[b].length || a - b);
  const budget = options.batchTokens ?? 8192;
  for (let start = 0; start < order.length; ) {
    let end = start;
    let tokens = 0;
    while (end < order.length && (end === start || tokens + Math.min(lists[order[end]].length, encoder.dims.maxTokens) <= budget)) tokens += Math.min(lists[order[end++]].length, encoder.dims.maxTokens);
    const batch = order.slice(start, end);
    const e = encoder.forward(params, packTokens(batch.map((i) => lists[i]), encoder.dims.maxTokens), { adapter: options.adapter });
    batch.forEach((row, i) => out.set(e.subarray(i * dim, (i + 1) * dim), row * dim));
    if (options.pooled) {
      const pooled = encoder.pooled();
      batch.forEach((row, i) => options.pooled!.set(pooled.subarray(i * width, (i + 1) * width), row * width));
    }
    start = end;
    options.onProgress?.(start, order.length);
  }
  return out;
}
