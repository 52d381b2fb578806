/** Labor Space: the public TypeScript API. */
export * from './native.js';
export * from './store/index.js';
export { ingest, type FirmFile, type IngestOptions, type IngestSummary } from './data/ingest.js';
export { IngestError } from './data/errors.js';
export { defaultHome, openHomeStore, storePath } from './home.js';
export { VERSION } from './version.js';
