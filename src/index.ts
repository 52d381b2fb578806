/** Labor Space: the public TypeScript API. */
export * from './native.js';
export * from './store/index.js';
export { ingest, type FirmFile, type IngestOptions, type IngestSummary } from './data/ingest.js';
export { IngestError } from './data/errors.js';
export { defaultHome, openHomeStore, storePath } from './home.js';
export { VERSION } from './version.js';
export { build, encodeStep, indexStep, type BuildSummary } from './build.js';
export { LaborSpace, BASE_MODEL_ID, SpaceError, parseQuery, type NearHit, type NearOptions, type NearResult } from './space.js';
export { SentenceEncoder, EncoderError, type EncoderOptions, type EncodeResult } from './encoder/sentence-encoder.js';
export { ensureUseLiteModel } from './encoder/model-cache.js';
export { SpaceIndex, type IndexManifest, type IndexOptions } from './index/space-index.js';
export { exportVectors, type ExportFormat } from './store/export.js';
export { trainStep, TUNED_MODEL_ID, type TrainOptions, type TrainSummary } from './train/run.js';
export { DEFAULT_KINDS, type KindConfig } from './train/examples.js';
export { DEFAULT_TRAIN_CONFIG, type TrainConfig } from './train/trainer.js';
export { evaluateSpace, type SpaceMetrics, type KindMetrics } from './train/evaluate.js';
