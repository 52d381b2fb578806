/**
 * `laborspace build`: every step that turns the bundled data into a queryable space, each of
 * which resumes where it stopped and redoes what it finds damaged: ingest (idempotent), convert
 * the model (cached, checksummed), encode (embedding cache), train (a finished run is reused while
 * its model's files match their checksums), vectors that are not finite embedded again, index
 * (rebuilt only when stale or corrupt).
 */
import { activeModel, BASE_MODEL_ID, indexDir, TUNED_MODEL_ID } from './active-model.js';
import { ingest, type IngestOptions, type IngestSummary } from './data/ingest.js';
import { encodeEntities, type EncodeSummary } from './encoder/encode-entities.js';
import { ensureUseLiteModel } from './encoder/model-cache.js';
import { SentenceEncoder, type EncodeProgress, type EncoderOptions } from './encoder/sentence-encoder.js';
import { openHomeStore } from './home.js';
import { type IndexManifest, type IndexOptions, SpaceIndex } from './index/space-index.js';
import { trainStep, type TrainOptions, type TrainStepHooks, type TrainSummary } from './train/run.js';
import type { Store } from './store/index.js';

export interface BuildHooks {
  onStep?: (step: string) => void;
  onNote?: (message: string) => void;
  onEncodeProgress?: (p: EncodeProgress) => void;
}

export async function encodeStep(store: Store, home: string, options: EncoderOptions & BuildHooks = {}): Promise<EncodeSummary> {
  const model = ensureUseLiteModel(home, options.onNote);
  const encoder = await SentenceEncoder.load(model.dir, {
    threads: options.threads,
    batchSize: options.batchSize,
    maxTokens: options.maxTokens,
    quantized: options.quantized,
  });
  try {
    return await encodeEntities(store, encoder, BASE_MODEL_ID, options.onEncodeProgress);
  } finally {
    await encoder.close();
  }
}

/**
 * Embeds again, with the model's own encoder, the entities whose stored vectors of `modelId` are
 * not finite (a damaged store: a NaN row fails every search that meets it); returns how many.
 */
export async function repairVectors(store: Store, modelId: string, options: EncoderOptions & BuildHooks = {}): Promise<number> {
  const model = store.model(modelId);
  if (!model) return 0;
  const set = store.vectors(modelId);
  const broken = set.refs.filter((_, i) => set.matrix.subarray(i * set.dim, (i + 1) * set.dim).some((v) => !Number.isFinite(v)));
  if (!broken.length) return 0;
  options.onNote?.(`${broken.length} vectors of ${modelId} are not finite (${broken.slice(0, 3).join(', ')}${broken.length > 3 ? ', ...' : ''}): embedding those entities again`);
  const encoder = await SentenceEncoder.load(String(model.extra.dir), { threads: options.threads, quantized: model.extra.quantized === true });
  try {
    if (encoder.hash !== model.hash) throw new Error(`the encoder in ${encoder.dir} is not the one ${modelId} was embedded with: run \`laborspace train\``);
    const { vectors, dim } = await encoder.encode(broken.map((ref) => store.entity(ref)!.text));
    store.putVectors(modelId, broken.map((ref, i) => ({ ref, vector: vectors.slice(i * dim, (i + 1) * dim) })));
  } finally {
    await encoder.close();
  }
  return broken.length;
}

/** Indexes the space's active model: the fine-tuned one when training has run, else the base one. */
export function indexStep(store: Store, home: string, options: IndexOptions = {}): IndexManifest {
  const modelId = activeModel(store)?.id ?? BASE_MODEL_ID;
  return SpaceIndex.open(store, modelId, indexDir(home, modelId), options).manifest;
}

export interface BuildSummary {
  ingest: IngestSummary;
  encode: EncodeSummary;
  train?: TrainSummary;
  index: IndexManifest;
  seconds: number;
}

export async function build(
  home: string,
  options: IngestOptions & EncoderOptions & BuildHooks & { train?: TrainOptions | false; trainHooks?: TrainStepHooks } = {},
): Promise<BuildSummary> {
  const started = Date.now();
  const store = openHomeStore(home);
  try {
    options.onStep?.('ingest');
    const ingestSummary = await ingest(store, options);
    options.onStep?.('encode');
    const encode = await encodeStep(store, home, options);
    let train: TrainSummary | undefined;
    if (options.train !== false) {
      options.onStep?.('train');
      train = await trainStep(store, home, options.train ?? {}, { ...options.trainHooks, onNote: options.onNote, onEncodeProgress: options.onEncodeProgress });
    }
    // The encode step wrote the base vectors from the (checked) embedding cache; the fine-tuned
    // ones are the training run's and are checked here.
    await repairVectors(store, TUNED_MODEL_ID, options);
    options.onStep?.('index');
    const index = indexStep(store, home, { onNote: options.onNote });
    return { ingest: ingestSummary, encode, train, index, seconds: (Date.now() - started) / 1000 };
  } finally {
    store.close();
  }
}
