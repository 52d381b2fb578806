/**
 * Encodes every entity's text into the store's vectors for a model, reusing cached embeddings by
 * (model hash, text hash) and caching new ones chunk by chunk, so an interrupted run resumes where
 * it stopped and a rebuild re-encodes only texts that changed.
 */
import type { Store } from '../store/index.js';
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

export async function encodeEntities(
  store: Store,
  encoder: SentenceEncoder,
  modelId: string,
  onProgress?: (p: EncodeProgress) => void,
): Promise<EncodeSummary> {
  const started = Date.now();
  const entities = store.entities();
  const hashes = entities.map((e) => sha256(e.text));
  const cache = store.cachedEmbeddings(encoder.hash, [...new Set(hashes)]);
  const missing = [...new Set(hashes.filter((h) => !cache.has(h)))];
  const textOf = new Map(entities.map((e, i) => [hashes[i], e.text]));
  let truncated = 0;
  for (let start = 0; start < missing.length; start += CHUNK) {
    const chunk = missing.slice(start, start + CHUNK);
    const result = await encoder.encode(
      chunk.map((h) => textOf.get(h)!),
      (p) => onProgress?.({ done: start + p.done, total: missing.length }),
    );
    truncated += result.truncated;
    const entries = chunk.map((textHash, i) => ({ textHash, vector: result.vectors.slice(i * result.dim, (i + 1) * result.dim) }));
    store.cacheEmbeddings(encoder.hash, entries);
    for (const e of entries) cache.set(e.textHash, e.vector);
  }
  const dim = cache.size ? cache.values().next().value!.length : 0;
  store.transaction(() => {
    store.registerModel({ id: modelId, name: modelId, dim, hash: encoder.hash, extra: { dir: encoder.dir, maxTokens: encoder.maxTokens, quantized: encoder.quantized } });
    store.putVectors(modelId, entities.map((e, i) => ({ ref: e.ref, vector: cache.get(hashes[i])!, textHash: hashes[i] })));
  });
  return { modelId, entities: entities.length, encoded: missing.length, cached: entities.length - missing.length, truncated, seconds: (Date.now() - started) / 1000 };
}
