/**
 * A generic ONNX sentence encoder over a Hugging Face-layout folder (onnx/model.onnx,
 * tokenizer.json, optional tokenizer_config.json and config.json), run with onnxruntime-node.
 * Texts are sorted by length and batched so that little padding is computed; results come back
 * in the input order. A model with a `sentence_embedding` output is used as it is; one with only
 * `last_hidden_state` is mean-pooled over real tokens and L2-normalised.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { Tokenizer } from '@huggingface/tokenizers';
import ort from 'onnxruntime-node';

import { modelFile, sha256 } from './model-cache.js';

export type EncoderErrorCode = 'EMPTY_TEXT' | 'MODEL_NOT_FOUND' | 'BAD_MODEL' | 'BAD_OPTION';

export class EncoderError extends Error {
  readonly code: EncoderErrorCode;
  constructor(code: EncoderErrorCode, message: string) {
    super(message);
    this.name = 'EncoderError';
    this.code = code;
  }
}

export interface EncoderOptions {
  /** Threads onnxruntime uses inside one batch (default: all cores). */
  threads?: number;
  /** Texts per batch (default 32). */
  batchSize?: number;
  /** Tokens kept per text; longer texts are truncated (default and cap: the model's limit). */
  maxTokens?: number;
  /** Run onnx/model_quantized.onnx (int8 dense layers) instead of onnx/model.onnx. */
  quantized?: boolean;
}

export interface EncodeResult {
  /** texts.length x dim, row-major, L2-normalised rows. */
  vectors: Float32Array;
  dim: number;
  /** How many texts were longer than maxTokens and cut. */
  truncated: number;
}

export interface EncodeProgress {
  done: number;
  total: number;
}

function readJson(path: string): Record<string, unknown> | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : undefined;
}

export class SentenceEncoder {
  readonly dir: string;
  /** sha256 of the ONNX file: embeddings are cached under it. */
  readonly hash: string;
  readonly maxTokens: number;
  readonly batchSize: number;
  readonly quantized: boolean;
  private readonly session: ort.InferenceSession;
  private readonly tokenizer: Tokenizer;
  private readonly output: 'sentence_embedding' | 'last_hidden_state';
  private readonly needsTokenTypes: boolean;

  private constructor(dir: string, hash: string, session: ort.InferenceSession, tokenizer: Tokenizer, maxTokens: number, batchSize: number, quantized: boolean) {
    this.dir = dir;
    this.quantized = quantized;
    this.hash = hash;
    this.session = session;
    this.tokenizer = tokenizer;
    this.maxTokens = maxTokens;
    this.batchSize = batchSize;
    this.output = session.outputNames.includes('sentence_embedding') ? 'sentence_embedding' : 'last_hidden_state';
    this.needsTokenTypes = session.inputNames.includes('token_type_ids');
  }

  static async load(dir: string, options: EncoderOptions = {}): Promise<SentenceEncoder> {
    const modelPath = join(dir, modelFile(options.quantized === true));
    for (const path of [modelPath, join(dir, 'tokenizer.json')])
      if (!existsSync(path)) throw new EncoderError('MODEL_NOT_FOUND', `${path} not found: a model folder holds ${modelFile(options.quantized === true)} and tokenizer.json`);
    for (const name of ['threads', 'batchSize', 'maxTokens'] as const) {
      const value = options[name];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new EncoderError('BAD_OPTION', `${name} must be a positive integer, got ${value}`);
    }
    const tokenizerJson = readJson(join(dir, 'tokenizer.json'))!;
    const tokenizerConfig = readJson(join(dir, 'tokenizer_config.json')) ?? {};
    const config = readJson(join(dir, 'config.json')) ?? {};
    const limit = Number(tokenizerConfig.model_max_length) > 0 && Number(tokenizerConfig.model_max_length) < 1e6
      ? Number(tokenizerConfig.model_max_length)
      : Number(config.max_position_embeddings) || 512;
    const bytes = readFileSync(modelPath);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: options.threads ?? 0,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      throw new EncoderError('BAD_MODEL', `${modelPath} cannot be loaded: ${(e as Error).message}`);
    }
    if (!session.inputNames.includes('input_ids') || !session.inputNames.includes('attention_mask'))
      throw new EncoderError('BAD_MODEL', `${modelPath} takes ${session.inputNames.join(', ')}; a sentence encoder takes input_ids and attention_mask`);
    if (!session.outputNames.includes('sentence_embedding') && !session.outputNames.includes('last_hidden_state'))
      throw new EncoderError('BAD_MODEL', `${modelPath} has outputs ${session.outputNames.join(', ')}; expected sentence_embedding or last_hidden_state`);
    const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    return new SentenceEncoder(dir, sha256(bytes), session, tokenizer, Math.min(options.maxTokens ?? limit, limit), options.batchSize ?? 32, options.quantized === true);
  }

  /** Token ids of a text, before truncation. */
  tokenize(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }

  /** The model's outputs (e.g. sentence_embedding, pooled_states). */
  get outputs(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Embeds texts; an empty or blank text is an error naming its index. `output` picks another
   * [batch, dim] output of the model (e.g. the converted model's pooled_states), returned as is.
   * An aborted `signal` stops the work between batches (rejecting with its reason); tokenizing
   * also goes batch by batch, giving the event loop a turn in between.
   */
  async encode(texts: readonly string[], onProgress?: (p: EncodeProgress) => void, output?: string, signal?: AbortSignal): Promise<EncodeResult> {
    if (output !== undefined && !this.session.outputNames.includes(output))
      throw new EncoderError('BAD_OPTION', `the model has no output ${output} (it has ${this.session.outputNames.join(', ')})`);
    texts.forEach((t, i) => {
      if (typeof t !== 'string' || t.trim() === '') throw new EncoderError('EMPTY_TEXT', `text ${i} is empty: there is nothing to embed`);
    });
    let truncated = 0;
    const ids: number[][] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      if (start > 0) await nextTurn();
      signal?.throwIfAborted();
      for (const t of texts.slice(start, start + this.batchSize)) {
        const all = this.tokenize(t);
        if (all.length > this.maxTokens) truncated++;
        ids.push(all.slice(0, this.maxTokens));
      }
    }
    // Shortest first: each batch pads to its longest text, so neighbours in length batch together.
    const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length || a - b);
    let vectors: Float32Array | undefined;
    let dim = 0;
    for (let start = 0; start < order.length; start += this.batchSize) {
      signal?.throwIfAborted();
      const batch = order.slice(start, start + this.batchSize);
      const out = await this.run(batch.map((i) => ids[i]), output ?? this.output);
      if (!vectors) {
        dim = out.length / batch.length;
        vectors = new Float32Array(texts.length * dim);
      }
      batch.forEach((textIndex, row) => vectors!.set(out.subarray(row * dim, (row + 1) * dim), textIndex * dim));
      onProgress?.({ done: Math.min(start + this.batchSize, order.length), total: order.length });
    }
    return { vectors: vectors ?? new Float32Array(0), dim, truncated };
  }

  private async run(batch: number[][], output: string): Promise<Float32Array> {
    const rows = batch.length;
    const width = Math.max(1, ...batch.map((b) => b.length));
    const inputIds = new BigInt64Array(rows * width);
    const mask = new BigInt64Array(rows * width);
    batch.forEach((tokens, r) =>
      tokens.forEach((id, c) => {
        inputIds[r * width + c] = BigInt(id);
        mask[r * width + c] = 1n;
      }),
    );
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', inputIds, [rows, width]),
      attention_mask: new ort.Tensor('int64', mask, [rows, width]),
    };
    if (this.needsTokenTypes) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(rows * width), [rows, width]);
    const result = await this.session.run(feeds, [output]);
    const out = result[output];
    const data = out.data as Float32Array;
    return output === 'last_hidden_state' ? meanPool(data, mask, rows, width, out.dims[2]) : data;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Mean of token states over real tokens, L2-normalised (for models that output token states). */
function meanPool(states: Float32Array, mask: BigInt64Array, rows: number, width: number, hidden: number): Float32Array {
  const out = new Float32Array(rows * hidden);
  for (let r = 0; r < rows; r++) {
    let count = 0;
    for (let t = 0; t < width; t++) {
      if (!mask[r * width + t]) continue;
      count++;
      for (let h = 0; h < hidden; h++) out[r * hidden + h] += states[(r * width + t) * hidden + h];
    }
    let norm = 0;
    for (let h = 0; h < hidden; h++) norm += (out[r * hidden + h] /= Math.max(count, 1)) ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let h = 0; h < hidden; h++) out[r * hidden + h] *= inv;
  }
  return out;
}
