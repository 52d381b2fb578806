/**
 * The Labor Space facade: a built home folder (store, model, indices) opened for queries.
 *
 *   const space = await LaborSpace.open(home);
 *   const { results } = await space.near('registered nurse', { types: ['occupation', 'skill'], k: 10 });
 */

import { arith, type ArithOptions, type ArithResult, axis, type AxisOptions, type AxisResult, shock, type ShockOptions, type ShockResult } from './analysis/analyses.js';
import { MAX_QUERY_LENGTH } from './analysis/expr.js';
import { activeModel, encoderDir, indexDir, type ModelChoice } from './active-model.js';
import { EncoderThread } from './encoder/encoder-thread.js';
import { checkCount, checkTypes, SpaceError } from './errors.js';
import { openBuiltHomeStore } from './home.js';
import { SpaceIndex } from './index/space-index.js';
import { ENTITY_TYPES, type Entity, type EntityType, isEntityType, type Model, type Store, StoreError } from './store/index.js';

export interface NearOptions {
  /** Entity types to search (default: all four). */
  types?: readonly EntityType[];
  /** Results per type (default 10). */
  k?: number;
  /** Scan every vector exactly instead of using HNSW where it is built. */
  exact?: boolean;
  /** Stops the text's encoding when aborted. */
  signal?: AbortSignal;
}

export interface NearHit {
  ref: string;
  title: string;
  score: number;
}

export interface NearResult {
  query: string;
  /** Set when the query named an entity (which is left out of its own results). */
  ref?: string;
  results: Partial<Record<EntityType, NearHit[]>>;
}

/**
 * Quoted text is always text; `TYPE:...` is a reference; anything else is text. A query longer
 * than MAX_QUERY_LENGTH characters is refused: the encoder reads only its first 128 tokens anyway.
 */
export function parseQuery(query: string): { text: string } | { ref: string } {
  const q = typeof query === 'string' ? query.trim() : '';
  if (!q) throw new SpaceError('BAD_QUERY', 'the query is empty: give a reference (TYPE:SOURCE:CODE) or some text');
  if (q.length > MAX_QUERY_LENGTH)
    throw new SpaceError('BAD_QUERY', `the query is ${q.length.toLocaleString('en-US')} characters long; at most ${MAX_QUERY_LENGTH.toLocaleString('en-US')} are accepted (the encoder reads only the first 128 tokens, some 500-900 characters)`);
  const quoted = /^"(.*)"$|^'(.*)'$/s.exec(q);
  if (quoted) {
    const text = (quoted[1] ?? quoted[2]).trim();
    if (!text) throw new SpaceError('BAD_QUERY', 'the quoted query text is empty');
    return { text };
  }
  const colon = q.indexOf(':');
  return colon > 0 && isEntityType(q.slice(0, colon)) ? { ref: q } : { text: q };
}

/**
 * What identifies a space's content: its model and encoder, the training run that made it, and
 * when its vectors were last written (every write replaces rows, so their largest rowid grows).
 */
function spaceVersion(store: Store, model: Model): string {
  const { written } = store.db.prepare<[string], { written: number | null }>('SELECT max(rowid) AS written FROM vectors WHERE model_id = ?').get(model.id)!;
  return `${model.id} ${model.hash.slice(0, 12)}${model.extra.runId !== undefined ? ` of training run ${model.extra.runId}` : ''}, vectors ${written ?? 0}`;
}

export class LaborSpace {
  readonly home: string;
  readonly store: Store;
  readonly index: SpaceIndex;
  /** The model whose vectors the space queries: the fine-tuned one when training has run. */
  readonly modelId: string;
  /** The hash of the model's encoder: a queue's workers score a run only with the model it was started with. */
  readonly modelHash: string;
  /** Its row in the store as it was when the space was opened. */
  private readonly model: Model;
  /** Which model was asked for at open, and what the space was then (see `staleness`). */
  private readonly choice: ModelChoice;
  private readonly version: string;
  private readonly threads?: number;
  private encoder?: Promise<EncoderThread>;
  private readonly titles = new Map<string, string>();
  /** Row of each reference in its type's vectors, built on first use. */
  private readonly rows = new WeakMap<object, Map<string, number>>();

  private constructor(home: string, store: Store, index: SpaceIndex, model: Model, choice: ModelChoice, threads?: number) {
    this.home = home;
    this.store = store;
    this.index = index;
    this.choice = choice;
    this.version = spaceVersion(store, model);
    this.modelId = model.id;
    this.model = model;
    this.modelHash = model.hash;
    this.threads = threads;
    for (const e of store.entities()) this.titles.set(e.ref, e.title);
  }

  /**
   * Opens a built home folder: the fine-tuned space when training has run (or `model: 'base'` for
   * the pretrained one); indices that are missing, stale or corrupt are rebuilt. `threads`: the encoder's (default: all cores); `readonly`: the store opened for reading only.
   */
  static async open(home: string, options: { onNote?: (message: string) => void; model?: ModelChoice; threads?: number; readonly?: boolean } = {}): Promise<LaborSpace> {
    let store: Store;
    try {
      store = openBuiltHomeStore(home, { readonly: options.readonly });
    } catch (e) {
      throw e instanceof StoreError && e.code === 'NO_STORE' ? new SpaceError('NOT_BUILT', e.message) : e;
    }
    try {
      const choice = options.model ?? 'tuned';
      const model = activeModel(store, choice);
      if (!model) throw new SpaceError('NOT_BUILT', `${home} has no encoded space yet: run \`laborspace build --home ${home}\``);
      const index = SpaceIndex.open(store, model.id, indexDir(home, model.id), { onNote: options.onNote });
      return new LaborSpace(home, store, index, model, choice, options.threads);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** What it was opened with: another LaborSpace opened so on the same home answers the same (the server's threads). */
  get openedWith(): { model: ModelChoice; threads?: number } {
    return { model: this.choice, ...(this.threads === undefined ? {} : { threads: this.threads }) };
  }

  /**
   * Why the home's space is no longer the one this object answers from (a training run or an
   * encode since it was opened, by this process or another), or undefined while it is the same.
   */
  staleness(): string | undefined {
    const model = activeModel(this.store, this.choice);
    const now = model && spaceVersion(this.store, model);
    if (now === this.version) return undefined;
    return `the home's space changed since it was opened (then ${this.version}, now ${now ?? 'none'})`;
  }

  /**
   * The encoder of the space's model, loaded on first use (the base one converted again if its
   * files went missing), on a worker thread so that encoding leaves the event loop free.
   */
  encoderInstance(): Promise<EncoderThread> {
    this.encoder ??= (async () => {
      const dir = encoderDir(this.home, this.model);
      let encoder: EncoderThread;
      try {
        encoder = await EncoderThread.load(dir, { quantized: this.model.extra.quantized === true, threads: this.threads });
      } catch (e) {
        // A damaged model file: onnxruntime's own message says only that it failed to parse.
        throw new SpaceError('NOT_BUILT', `cannot load the encoder of ${this.modelId} from ${dir} (${(e as Error).message}): run \`laborspace build --home ${this.home}\`, which repairs it`);
      }
      if (encoder.hash !== this.model.hash) {
        await encoder.close();
        throw new SpaceError('NOT_BUILT', `the encoder of ${this.modelId} changed since the space was encoded: run \`laborspace build --home ${this.home}\``);
      }
      return encoder;
    })();
    return this.encoder;
  }

  /** Embeds texts with the space's encoder: texts.length x dim, unit rows (`signal` stops it between batches). */
  async embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array> {
    return (await (await this.encoderInstance()).encode(texts, signal)).vectors;
  }

  /** Dimension of the space's vectors. */
  get dim(): number {
    return this.index.vectors('occupation')?.dim ?? this.index.vectors('industry')?.dim ?? 512;
  }

  /** The title of a stored entity ('' when unknown). */
  title(ref: string): string {
    return this.titles.get(ref) ?? '';
  }

  /** Nearest entities of each type to a linear expression of references and texts (analysis/expr.ts). */
  arith(expr: string, options: ArithOptions = {}): Promise<ArithResult> {
    return arith(this, expr, options);
  }

  /** Every entity scored on the axis from one set of poles to another (analysis/analyses.ts). */
  axis(from: readonly string[], to: readonly string[], options: AxisOptions = {}): Promise<AxisResult> {
    return axis(this, from, to, options);
  }

  /** Exposure to a shock direction and its ripple along the relations (analysis/ripple.ts). */
  shock(direction: string, options: ShockOptions = {}): Promise<ShockResult> {
    return shock(this, direction, options);
  }

  entity(ref: string): Entity {
    return this.store.resolve(ref);
  }

  /**
   * The full reference (TYPE:SOURCE:CODE) of `ref`, without a store query when it is one already
   * (an axis reads hundreds); a SpaceError when it names no entity or several.
   */
  resolveRef(ref: string): string {
    if (this.titles.has(ref)) return ref;
    try {
      return this.store.resolve(ref).ref;
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
      throw new SpaceError(e.code === 'UNKNOWN_ENTITY' ? 'UNKNOWN_ENTITY' : 'BAD_QUERY', e.message);
    }
  }

  /** The unit vector of a stored entity. */
  vectorOf(ref: string): Float32Array {
    const full = this.resolveRef(ref);
    const set = this.index.vectors(full.slice(0, full.indexOf(':')) as EntityType);
    if (set && !this.rows.has(set)) this.rows.set(set, new Map(set.refs.map((r, i) => [r, i])));
    const row = set ? this.rows.get(set)!.get(full) ?? -1 : -1;
    if (!set || row < 0) throw new SpaceError('NOT_BUILT', `${full} has no vector yet: run \`laborspace build\``);
    return set.matrix.slice(row * set.dim, (row + 1) * set.dim);
  }

  /** Nearest entities of each type to a reference or a text. */
  async near(query: string, options: NearOptions = {}): Promise<NearResult> {
    const k = checkCount('k', options.k ?? 10, 1000);
    const types = checkTypes(options.types) ?? ENTITY_TYPES;
    const parsed = parseQuery(query);
    let vector: Float32Array;
    let ref: string | undefined;
    if ('ref' in parsed) {
      ref = this.resolveRef(parsed.ref);
      vector = this.vectorOf(ref);
    } else {
      vector = await this.embed([parsed.text], options.signal);
    }
    // The types are searched at once, off the event loop (see SpaceIndex.searchAsync).
    const found = await Promise.all(types.map((type) => this.index.searchAsync(type, vector, ref ? k + 1 : k, options.exact === true)));
    const results: NearResult['results'] = {};
    for (const [i, type] of types.entries()) {
      const set = this.index.vectors(type)!;
      const hits = found[i];
      results[type] = hits.rows
        .map((row, i) => ({ ref: set.refs[row], title: this.titles.get(set.refs[row]) ?? '', score: hits.scores[i] }))
        .filter((h) => h.ref !== ref)
        .slice(0, k);
    }
    return { query, ...(ref ? { ref } : {}), results };
  }

  async close(): Promise<void> {
    if (this.encoder) await (await this.encoder.catch(() => undefined))?.close();
    this.store.close();
  }
}
