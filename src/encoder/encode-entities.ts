/**
 * Encodes every entity's text, reusing cached embeddings by (model hash and output, text hash) and
 * caching new ones chunk by chunk, so an interrupted run resumes where it stopped and a rebuild
 * re-encodes only texts that changed.
 */
import type { Entity, Store } from '../store/index.js';
import { sha256 } from './model-cache.js';
import type { EncodeProgress, SentenceEncoder } from './sentence-encoder.js';

export interface EncodeSummary {
  modelId: string;
  entities: number;
  encoded: number;
  cached: number;
  truncated: number;
  seconds: number;
}

/** Texts encoded between two cache writes. */
const CHUNK = 1024;

interface EntityVectors {
  entities: Entity[];
  /** Per entity, in the order of `entities`: its vector and the sha256 of its text. */
  vectors: Float32Array[];
  hashes: string[];
  dim: number;
  encoded: number;
  truncated: number;
}

/** Every entity's vector from one output of the encoder, through the cache. */
async function entityVectors(store: Store, encoder: SentenceEncoder, output: string | undefined, onProgress?: (p: EncodeProgress) => void): Promise<EntityVectors> {
  const cacheKey = output ? `${encoder.hash}:${output}` : encoder.hash;
  const entities = store.entities();
  const hashes = entities.map((e) => sha256(e.text));
  const cache = store.cachedEmbeddings(cacheKey, [...new Set(hashes)]);
  const missing = [...new Set(hashes.filter((h) => !cache.has(h)))];
  const textOf = new Map(entities.map((e, i) => [hashes[i], e.text]));
  let truncated = 0;
  for (let start = 0; start < missing.length; start += CHUNK) {
    const chunk = missing.slice(start, start + CHUNK);
    const result = await encoder.encode(
      chunk.map((h) => textOf.get(h)!),
      (p) => onProgress?.({ done: start + p.done, total: missing.length }),
      output,
    );
    truncated += result.truncated;
    const entries = chunk.map((textHash, i) => ({ textHash, vector: result.vectors.slice(i * result.dim, (i + 1) * result.dim) }));
    store.cacheEmbeddings(cacheKey, entries);
    for (const e of entries) cache.set(e.textHash, e.vector);
  }
  const vectors = hashes.map((h) => cache.get(h)!);
  return { entities, vectors, hashes, dim: vectors[0]?.length ?? 0, encoded: missing.length, truncated };
}

/** Embeds every entity into the store's vectors for `modelId`. */
export async function encodeEntities(store: Store, encoder: SentenceEncoder, modelId: string, onProgress?: (p: EncodeProgress) => void): Promise<EncodeSummary> {
  const started = Date.now();
  const { entities, vectors, hashes, dim, encoded, truncated } = await entityVectors(store, encoder, undefined, onProgress);
  store.transaction(() => {
    store.registerModel({ id: modelId, name: modelId, dim, hash: encoder.hash, extra: { dir: encoder.dir, maxTokens: encoder.maxTokens, quantized: encoder.quantized } });
    store.putVectors(modelId, entities.map((e, i) => ({ ref: e.ref, vector: vectors[i], textHash: hashes[i] })));
  });
  return { modelId, entities: entities.length, encoded, cached: entities.length - encoded, truncated, seconds: (Date.now() - started) / 1000 };
}

/** The frozen transformer's mean-pooled states of every entity (what the trainable head reads), as one matrix. */
export async function pooledStates(store: Store, encoder: SentenceEncoder, onProgress?: (p: EncodeProgress) => void): Promise<{ refs: string[]; dim: number; matrix: Float32Array }> {
  const { entities, vectors, dim } = await entityVectors(store, encoder, 'pooled_states', onProgress);
  const matrix = new Float32Array(entities.length * dim);
  vectors.forEach((v, i) => matrix.set(v, i * dim));
  return { refs: entities.map((e) => e.ref), dim, matrix };
}
