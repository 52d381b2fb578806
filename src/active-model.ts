/**
 * Which model a home's space uses and where its files are, for every part that needs to know
 * (the space, build, train, export, the CLI and, through the space, the server): the fine-tuned
 * model once training has run, unless the pretrained one is asked for.
 */
import { join } from 'node:path';

import { ensureUseLiteModel } from './encoder/model-cache.js';
import type { Model, Store } from './store/index.js';

/** The store's model id for the pretrained (not fine-tuned) encoder's vectors. */
export const BASE_MODEL_ID = 'use-lite-base';
/** The store's model id for the fine-tuned space. */
export const TUNED_MODEL_ID = 'use-lite-tuned';

/** `tuned`: the fine-tuned space where there is one, else the base one; `base`: the pretrained one. */
export type ModelChoice = 'tuned' | 'base';

/** The model whose vectors a space of this store queries, or undefined before anything is encoded. */
export function activeModel(store: Store, choice: ModelChoice = 'tuned'): Model | undefined {
  return (choice !== 'base' && store.model(TUNED_MODEL_ID)) || store.model(BASE_MODEL_ID);
}

/** The folder of a model's nearest-neighbour indices. */
export function indexDir(home: string, modelId: string): string {
  return join(home, 'indices', modelId);
}

/**
 * The folder of a model's encoder: the base one converted again where its files are missing or
 * damaged; the fine-tuned one where training wrote it (build repairs it, see train/run.ts).
 */
export function encoderDir(home: string, model: Model, onNote?: (message: string) => void): string {
  return model.id === BASE_MODEL_ID ? ensureUseLiteModel(home, onNote).dir : String(model.extra.dir);
}
