/**
 * `laborspace build`: every step that turns the bundled data into a queryable space, each of
 * which resumes where it stopped: ingest (idempotent), convert the model (cached), encode
 * (embedding cache), index (rebuilt only when stale).
 */
import { join } from 'node:path';

import { ingest, type IngestOptions, type IngestSummary } from './data/ingest.js';
import { encodeEntities, type EncodeSummary } from './encoder/encode-entities.js';
import { ensureUseLiteModel } from './encoder/model-cache.js';
import { SentenceEncoder, type EncodeProgress, type EncoderOptions } from './encoder/sentence-encoder.js';
import { openHomeStore } from './home.js';
import { type IndexManifest, type IndexOptions, SpaceIndex } from './index/space-index.js';
import { BASE_MODEL_ID } from './space.js';
import { trainStep, TUNED_MODEL_ID, type TrainOptions, type TrainStepHooks, type TrainSummary } from './train/run.js';
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

/** Indexes the space's active model: the fine-tuned one when training has run, else the base one. */
export function indexStep(store: Store, home: string, options: IndexOptions = {}): IndexManifest {
  const modelId = store.model(TUNED_MODEL_ID) ? TUNED_MODEL_ID : BASE_MODEL_ID;
  return SpaceIndex.open(store, modelId, join(home, 'indices', modelId), options).manifest;
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
    options.onStep?.('index');
    const index = indexStep(store, home, { onNote: options.onNote });
    return { ingest: ingestSummary, encode, train, index, seconds: (Date.now() - started) / 1000 };
  } finally {
    store.close();
  }
}
