/**
 * The SQLite store: entities, relations, vectors, models and runs (better-sqlite3 12, WAL).
 * Every write runs in one transaction, so a failed batch leaves nothing behind; constraint
 * violations surface as StoreError with a code and the offending item. A model's `extra.dir` inside
 * the store's folder is kept relative to it, so that a home can be moved or copied.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';

import Database from 'better-sqlite3';

import { processAlive } from '../util/process.js';

import { MIGRATIONS } from './schema.js';
import { type EntityKey, type EntityType, ENTITY_TYPES, formatRef, isEntityType, parseRef } from './refs.js';

export type StoreErrorCode =
  | 'INVALID_ENTITY'
  | 'DUPLICATE_ENTITY'
  | 'INVALID_REF'
  | 'AMBIGUOUS_REF'
  | 'UNKNOWN_ENTITY'
  | 'INVALID_RELATION'
  | 'UNKNOWN_MODEL'
  | 'INVALID_MODEL'
  | 'DIMENSION_MISMATCH'
  | 'NON_FINITE'
  | 'UNKNOWN_RUN'
  | 'SCHEMA_TOO_NEW'
  | 'LOCKED'
  | 'NO_STORE';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

export interface EntityInput extends EntityKey {
  title: string;
  /** What the encoder reads. Must not be empty. */
  text: string;
  version?: string;
  extra?: Record<string, unknown>;
}

export interface Entity extends Required<EntityInput> {
  id: number;
  ref: string;
}

export interface RelationInput {
  /** Full references (`TYPE:SOURCE:CODE`) of both ends. */
  source: string;
  target: string;
  kind: string;
  weight?: number;
  provenance?: string;
}

export interface Relation {
  source: string;
  target: string;
  kind: string;
  weight: number;
  provenance: string;
}

export interface ModelInput {
  id: string;
  name: string;
  dim: number;
  hash?: string;
  extra?: Record<string, unknown>;
}

export interface Model extends Required<ModelInput> {
  createdAt: string;
}

export interface VectorInput {
  ref: string;
  vector: Float32Array;
  textHash?: string;
}

export interface VectorSet {
  dim: number;
  refs: string[];
  entityIds: Int32Array;
  /** refs.length x dim, row-major. */
  matrix: Float32Array;
}

export interface Run {
  id: number;
  modelId: string | null;
  kind: string;
  config: Record<string, unknown>;
  dataHash: string;
  metrics: Record<string, unknown>;
  /** `interrupted`: the process running it ended before it finished (found when a store is opened). */
  status: 'running' | 'done' | 'failed' | 'interrupted';
  startedAt: string;
  finishedAt: string | null;
}

export interface UpsertCounts {
  inserted: number;
  updated: number;
  unchanged: number;
}

interface EntityRow {
  id: number;
  type: EntityType;
  source: string;
  code: string;
  title: string;
  text: string;
  version: string;
  extra: string;
}

function toEntity(row: EntityRow): Entity {
  return { ...row, extra: JSON.parse(row.extra) as Record<string, unknown>, ref: formatRef(row) };
}

function describe(item: unknown): string {
  const s = JSON.stringify(item) ?? String(item);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

export class Store {
  readonly db: Database.Database;
  readonly path: string;
  /** The folder relative paths in the store are resolved against (undefined in memory). */
  private readonly folder?: string;

  private constructor(db: Database.Database, path: string) {
    this.db = db;
    this.path = path;
    this.folder = path === ':memory:' ? undefined : dirname(resolve(path));
  }

  /**
   * Opens (creating if needed) the store at `path`, or an in-memory one for ':memory:'. Runs left
   * `running` by a process that has ended are marked `interrupted`. `readonly` opens an existing,
   * migrated store for reading only (the processes of `serve --workers`, after the primary opened it).
   */
  static open(path: string, options: { readonly?: boolean } = {}): Store {
    const db = new Database(path, options.readonly ? { readonly: true, fileMustExist: true } : {});
    const store = new Store(db, path);
    if (options.readonly) return store;
    try {
      if (path !== ':memory:') db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma('synchronous = NORMAL');
      store.migrate();
      try {
        store.transaction(() => {
          store.relativizeModelDirs();
          store.markInterruptedRuns();
        });
      } catch (e) {
        // Housekeeping only: a store another process is writing to still opens, for reading.
        if (!(e instanceof StoreError && e.code === 'LOCKED')) throw e;
      }
      return store;
    } catch (e) {
      db.close();
      throw store.lockedAsStoreError(e);
    }
  }

  /** Schema version this store is at (number of migrations applied). */
  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > MIGRATIONS.length) {
      throw new StoreError(
        'SCHEMA_TOO_NEW',
        `store schema version ${current} is newer than this laborspace knows (${MIGRATIONS.length}); upgrade laborspace`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.transaction(() => {
        this.db.exec(MIGRATIONS[v]);
        this.db.pragma(`user_version = ${v + 1}`);
      });
    }
  }

  /**
   * Model folders stored as absolute paths (as stores did before relative ones) become relative
   * when inside the store's folder, or when they name `.../models/NAME` and the store's folder has
   * its own `models/NAME`: a home moved or copied before this uses its own models.
   */
  private relativizeModelDirs(): void {
    const folder = this.folder;
    if (!folder) return;
    const rows = this.db.prepare<[], { id: string; extra: string }>('SELECT id, extra FROM models').all();
    for (const row of rows) {
      const extra = JSON.parse(row.extra) as Record<string, unknown>;
      if (typeof extra.dir !== 'string' || !isAbsolute(extra.dir)) continue;
      const own = join('models', basename(extra.dir));
      const moved = basename(dirname(extra.dir)) === 'models' && existsSync(join(folder, own));
      const stored = moved ? own : this.storedDir(extra.dir);
      if (stored !== extra.dir) this.db.prepare('UPDATE models SET extra = ? WHERE id = ?').run(JSON.stringify({ ...extra, dir: stored }), row.id);
    }
  }

  /** A folder as the store keeps it: relative to the store's folder when inside it, else absolute. */
  private storedDir(dir: string): string {
    const absolute = resolve(dir);
    if (!this.folder) return absolute;
    const inside = relative(this.folder, absolute);
    return inside && !inside.startsWith('..') && !isAbsolute(inside) ? inside : absolute;
  }

  private markInterruptedRuns(): void {
    const running = this.db.prepare<[], { id: number; pid: number | null }>(`SELECT id, pid FROM runs WHERE status = 'running'`).all();
    const mark = this.db.prepare(`UPDATE runs SET status = 'interrupted', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?`);
    // A run from before runs kept their process (no pid) cannot still be going under this schema.
    for (const run of running) if (run.pid === null || !processAlive(run.pid)) mark.run(run.id);
  }

  close(): void {
    this.db.close();
  }

  // ---- entities ----

  /**
   * Inserts new entities and updates changed ones (matched by type, source and code). The whole
   * batch is checked first; one bad item rejects the batch.
   */
  upsertEntities(items: readonly EntityInput[]): UpsertCounts {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const problem = this.entityProblem(item);
      if (problem) throw new StoreError('INVALID_ENTITY', `entity ${i} ${describe(item)}: ${problem}`);
      const ref = formatRef(item);
      const first = seen.get(ref);
      if (first !== undefined) throw new StoreError('DUPLICATE_ENTITY', `entities ${first} and ${i} are both ${ref}`);
      seen.set(ref, i);
    });
    const find = this.db.prepare<[string, string, string], EntityRow>(
      'SELECT * FROM entities WHERE type = ? AND source = ? AND code = ?',
    );
    const insert = this.db.prepare(
      'INSERT INTO entities (type, source, code, title, text, version, extra) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const update = this.db.prepare('UPDATE entities SET title = ?, text = ?, version = ?, extra = ? WHERE id = ?');
    const counts: UpsertCounts = { inserted: 0, updated: 0, unchanged: 0 };
    this.transaction(() => {
      for (const item of items) {
        const version = item.version ?? '';
        const extra = JSON.stringify(item.extra ?? {});
        const row = find.get(item.type, item.source, item.code);
        if (!row) {
          insert.run(item.type, item.source, item.code, item.title, item.text, version, extra);
          counts.inserted++;
        } else if (row.title !== item.title || row.text !== item.text || row.version !== version || row.extra !== extra) {
          update.run(item.title, item.text, version, extra, row.id);
          counts.updated++;
        } else {
          counts.unchanged++;
        }
      }
    });
    return counts;
  }

  private entityProblem(item: EntityInput): string | undefined {
    if (!item || typeof item !== 'object') return 'is not an object';
    if (!isEntityType(item.type)) return `type must be one of ${ENTITY_TYPES.join(', ')}`;
    for (const field of ['source', 'code', 'title', 'text'] as const) {
      if (typeof item[field] !== 'string' || item[field].trim() === '') return `${field} is empty`;
    }
    if (item.source.includes(':')) return 'source must not contain ":"';
    if (item.version !== undefined && typeof item.version !== 'string') return 'version must be a string';
    if (item.extra !== undefined && (typeof item.extra !== 'object' || item.extra === null || Array.isArray(item.extra)))
      return 'extra must be an object';
    return undefined;
  }

  /** The entity with this full reference, or undefined. Throws on a malformed reference. */
  entity(ref: string): Entity | undefined {
    const key = this.key(ref);
    const row = this.db
      .prepare<[string, string, string], EntityRow>('SELECT * FROM entities WHERE type = ? AND source = ? AND code = ?')
      .get(key.type, key.source, key.code);
    return row && toEntity(row);
  }

  /**
   * The entity a user means by `ref`: a full reference, or `TYPE:CODE` where only one source has
   * that code. An unknown or ambiguous reference is a StoreError that lists close matches.
   */
  resolve(ref: string): Entity {
    const full = parseRef(ref);
    if (full) {
      const found = this.entity(ref);
      if (found) return found;
      throw new StoreError('UNKNOWN_ENTITY', `no entity ${ref}${this.suggestions(full.type, full.code)}`);
    }
    const colon = typeof ref === 'string' ? ref.indexOf(':') : -1;
    const type = colon > 0 ? ref.slice(0, colon) : '';
    const code = ref.slice(colon + 1);
    if (!isEntityType(type) || !code)
      throw new StoreError('INVALID_REF', `${describe(ref)} is not a reference (TYPE:SOURCE:CODE or TYPE:CODE, TYPE one of ${ENTITY_TYPES.join(', ')})`);
    const rows = this.db.prepare<[string, string], EntityRow>('SELECT * FROM entities WHERE type = ? AND code = ? ORDER BY source').all(type, code);
    if (rows.length === 1) return toEntity(rows[0]);
    if (rows.length > 1)
      throw new StoreError('AMBIGUOUS_REF', `${ref} is ambiguous: ${rows.map((r) => formatRef(r)).join(', ')}`);
    throw new StoreError('UNKNOWN_ENTITY', `no entity ${ref}${this.suggestions(type, code)}`);
  }

  /** "; did you mean ..." with entities of the type whose code or title is close to `code`. */
  private suggestions(type: EntityType, code: string): string {
    const rows = this.db
      .prepare<{ type: string; prefix: string; like: string; length: number }, EntityRow>(
        `SELECT * FROM entities WHERE type = @type AND (code LIKE @prefix OR @prefix LIKE code || '%' OR lower(title) LIKE @like)
         ORDER BY abs(length(code) - @length), code LIMIT 5`,
      )
      .all({ type, prefix: `${code.slice(0, Math.max(2, code.length - 1))}%`, like: `%${code.toLowerCase()}%`, length: code.length });
    return rows.length ? `; did you mean ${rows.map((r) => `${formatRef(r)} (${r.title})`).join(', ')}?` : '';
  }

  entities(filter: { type?: EntityType; source?: string } = {}): Entity[] {
    const rows = this.db
      .prepare<[{ type: string | null; source: string | null }], EntityRow>(
        'SELECT * FROM entities WHERE (@type IS NULL OR type = @type) AND (@source IS NULL OR source = @source) ORDER BY id',
      )
      .all({ type: filter.type ?? null, source: filter.source ?? null });
    return rows.map(toEntity);
  }

  /** Entity counts per type and source. */
  entityCounts(): { type: EntityType; source: string; count: number }[] {
    return this.db
      .prepare<[], { type: EntityType; source: string; count: number }>(
        'SELECT type, source, count(*) AS count FROM entities GROUP BY type, source ORDER BY type, source',
      )
      .all();
  }

  private key(ref: string, context = ''): EntityKey {
    const key = typeof ref === 'string' ? parseRef(ref) : undefined;
    if (!key) throw new StoreError('INVALID_REF', `${context}${describe(ref)} is not a reference of the form TYPE:SOURCE:CODE`);
    return key;
  }

  private idOf(ref: string): number {
    const key = this.key(ref);
    const row = this.db
      .prepare<[string, string, string], { id: number }>('SELECT id FROM entities WHERE type = ? AND source = ? AND code = ?')
      .get(key.type, key.source, key.code);
    if (!row) throw new StoreError('UNKNOWN_ENTITY', `no entity ${ref}`);
    return row.id;
  }

  // ---- relations ----

  /** Adds relations, replacing weight and provenance of an existing (source, target, kind). */
  addRelations(items: readonly RelationInput[]): number {
    const upsert = this.db.prepare(
      `INSERT INTO relations (source_id, target_id, kind, weight, provenance) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (source_id, target_id, kind) DO UPDATE SET weight = excluded.weight, provenance = excluded.provenance`,
    );
    this.transaction(() => {
      const ids = this.idsByRef();
      const idOf = (ref: string, i: number, kind: string): number => {
        this.key(ref, `relation ${i} (${kind}): `);
        const id = ids.get(ref);
        if (id === undefined) throw new StoreError('UNKNOWN_ENTITY', `relation ${i} (${kind}): no entity ${ref}`);
        return id;
      };
      items.forEach((item, i) => {
        if (!item || typeof item.kind !== 'string' || item.kind.trim() === '')
          throw new StoreError('INVALID_RELATION', `relation ${i} ${describe(item)}: kind is empty`);
        const weight = item.weight ?? 1;
        if (typeof weight !== 'number' || !Number.isFinite(weight))
          throw new StoreError('INVALID_RELATION', `relation ${i} ${describe(item)}: weight must be a finite number`);
        upsert.run(idOf(item.source, i, item.kind), idOf(item.target, i, item.kind), item.kind, weight, item.provenance ?? '');
      });
    });
    return items.length;
  }

  /** Every entity's id by reference: one query instead of one per lookup in large batches. */
  private idsByRef(): Map<string, number> {
    const rows = this.db.prepare<[], { id: number; type: EntityType; source: string; code: string }>('SELECT id, type, source, code FROM entities').all();
    return new Map(rows.map((r) => [formatRef(r), r.id]));
  }

  /**
   * Runs fn in one transaction (nested calls become savepoints): all of it is written, or none.
   * SQLite's "database is locked" becomes a StoreError that says another process holds the store.
   */
  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      throw this.lockedAsStoreError(e);
    }
  }

  private lockedAsStoreError(e: unknown): unknown {
    if ((e as { code?: string }).code !== 'SQLITE_BUSY') return e;
    return new StoreError('LOCKED', `${this.path} is locked: another process holds this Labor Space home (a build, ingest or training writing to it); try again when it has finished`);
  }

  /** Relations touching an entity, outgoing, incoming or both, optionally of one kind. */
  relations(ref: string, options: { kind?: string; direction?: 'out' | 'in' | 'both' } = {}): Relation[] {
    const id = this.idOf(ref);
    const direction = options.direction ?? 'both';
    const sql = `
      SELECT s.type || ':' || s.source || ':' || s.code AS source,
             t.type || ':' || t.source || ':' || t.code AS target,
             r.kind, r.weight, r.provenance
      FROM relations r JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id
      WHERE ((@direction IN ('out', 'both') AND r.source_id = @id) OR (@direction IN ('in', 'both') AND r.target_id = @id))
        AND (@kind IS NULL OR r.kind = @kind)
      ORDER BY r.kind, r.weight DESC, r.id`;
    return this.db
      .prepare<[{ id: number; direction: string; kind: string | null }], Relation>(sql)
      .all({ id, direction, kind: options.kind ?? null });
  }

  /** Every relation of one kind, source and target as references, in insertion order. */
  relationsOfKind(kind: string): { source: string; target: string; weight: number }[] {
    return this.db
      .prepare<[string], { source: string; target: string; weight: number }>(
        `SELECT s.type || ':' || s.source || ':' || s.code AS source, t.type || ':' || t.source || ':' || t.code AS target, r.weight
         FROM relations r JOIN entities s ON s.id = r.source_id JOIN entities t ON t.id = r.target_id WHERE r.kind = ? ORDER BY r.id`,
      )
      .all(kind);
  }

  relationCounts(): { kind: string; count: number }[] {
    return this.db
      .prepare<[], { kind: string; count: number }>('SELECT kind, count(*) AS count FROM relations GROUP BY kind ORDER BY kind')
      .all();
  }

  // ---- models and vectors ----

  registerModel(model: ModelInput): Model {
    if (typeof model?.id !== 'string' || model.id === '' || typeof model.name !== 'string' || model.name === '')
      throw new StoreError('INVALID_MODEL', `model ${describe(model)}: id and name are required`);
    if (!Number.isInteger(model.dim) || model.dim < 1)
      throw new StoreError('INVALID_MODEL', `model ${model.id}: dim must be a positive integer, got ${model.dim}`);
    const existing = this.model(model.id);
    if (existing && existing.dim !== model.dim)
      throw new StoreError('DIMENSION_MISMATCH', `model ${model.id} is registered with dim ${existing.dim}, not ${model.dim}`);
    const extra = { ...model.extra };
    if (typeof extra.dir === 'string') extra.dir = this.storedDir(extra.dir);
    this.transaction(() =>
      this.db
        .prepare(
          `INSERT INTO models (id, name, dim, hash, extra) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, hash = excluded.hash, extra = excluded.extra`,
        )
        .run(model.id, model.name, model.dim, model.hash ?? '', JSON.stringify(extra)),
    );
    return this.model(model.id)!;
  }

  model(id: string): Model | undefined {
    const row = this.db
      .prepare<[string], { id: string; name: string; dim: number; hash: string; extra: string; created_at: string }>(
        'SELECT * FROM models WHERE id = ?',
      )
      .get(id);
    if (!row) return undefined;
    const extra = JSON.parse(row.extra) as Record<string, unknown>;
    if (typeof extra.dir === 'string' && this.folder && !isAbsolute(extra.dir)) extra.dir = join(this.folder, extra.dir);
    return { id: row.id, name: row.name, dim: row.dim, hash: row.hash, extra, createdAt: row.created_at };
  }

  private requireModel(id: string): Model {
    const model = this.model(id);
    if (!model) throw new StoreError('UNKNOWN_MODEL', `no model ${describe(id)}; register it first`);
    return model;
  }

  /**
   * Stores one vector per entity for a model, replacing older ones that differ. A vector equal to
   * the stored one (bytes and text hash) is left as it is: a rebuild that changes nothing must not
   * look to an open space like a new one (its version counts the rows written).
   */
  putVectors(modelId: string, items: readonly VectorInput[]): void {
    const { dim } = this.requireModel(modelId);
    const put = this.db.prepare(
      'INSERT OR REPLACE INTO vectors (entity_id, model_id, dim, text_hash, data) VALUES (?, ?, ?, ?, ?)',
    );
    const stored = this.db.prepare<[number, string], { text_hash: string; data: Buffer }>('SELECT text_hash, data FROM vectors WHERE entity_id = ? AND model_id = ?');
    this.transaction(() => {
      const ids = this.idsByRef();
      items.forEach((item, i) => {
        if (!(item?.vector instanceof Float32Array))
          throw new StoreError('DIMENSION_MISMATCH', `vector ${i} (${item?.ref}): must be a Float32Array`);
        if (item.vector.length !== dim)
          throw new StoreError('DIMENSION_MISMATCH', `vector ${i} (${item.ref}): has ${item.vector.length} values, model ${modelId} has dim ${dim}`);
        const bad = item.vector.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new StoreError('NON_FINITE', `vector ${i} (${item.ref}): value ${bad} is ${item.vector[bad]}`);
        this.key(item.ref, `vector ${i}: `);
        const id = ids.get(item.ref);
        if (id === undefined) throw new StoreError('UNKNOWN_ENTITY', `vector ${i}: no entity ${item.ref}`);
        const bytes = Buffer.from(item.vector.buffer, item.vector.byteOffset, item.vector.byteLength);
        const old = stored.get(id, modelId);
        if (old && old.text_hash === (item.textHash ?? '') && bytes.equals(old.data)) return;
        put.run(id, modelId, dim, item.textHash ?? '', bytes);
      });
    });
  }

  /** All vectors of a model (optionally of one type), as one matrix in entity-id order. */
  vectors(modelId: string, filter: { type?: EntityType } = {}): VectorSet {
    const { dim } = this.requireModel(modelId);
    const rows = this.db
      .prepare<[{ model: string; type: string | null }], { id: number; type: EntityType; source: string; code: string; data: Buffer }>(
        `SELECT e.id, e.type, e.source, e.code, v.data FROM vectors v JOIN entities e ON e.id = v.entity_id
         WHERE v.model_id = @model AND (@type IS NULL OR e.type = @type) ORDER BY e.id`,
      )
      .all({ model: modelId, type: filter.type ?? null });
    const matrix = new Float32Array(rows.length * dim);
    const entityIds = new Int32Array(rows.length);
    rows.forEach((row, i) => {
      matrix.set(new Float32Array(row.data.buffer, row.data.byteOffset, dim), i * dim);
      entityIds[i] = row.id;
    });
    return { dim, refs: rows.map(formatRef), entityIds, matrix };
  }

  // ---- embedding cache ----

  /**
   * Cached embeddings of a model for the given text hashes. Those not cached are absent, as are
   * damaged entries (values that are not finite), so that they are encoded again.
   */
  cachedEmbeddings(modelHash: string, textHashes: readonly string[]): Map<string, Float32Array> {
    const get = this.db.prepare<[string, string], { data: Buffer }>('SELECT data FROM embedding_cache WHERE model_hash = ? AND text_hash = ?');
    const found = new Map<string, Float32Array>();
    for (const h of textHashes) {
      const row = get.get(modelHash, h);
      const vector = row && new Float32Array(new Uint8Array(row.data).buffer);
      if (vector && vector.every(Number.isFinite)) found.set(h, vector);
    }
    return found;
  }

  cacheEmbeddings(modelHash: string, entries: readonly { textHash: string; vector: Float32Array }[]): void {
    const put = this.db.prepare('INSERT OR REPLACE INTO embedding_cache (model_hash, text_hash, dim, data) VALUES (?, ?, ?, ?)');
    this.transaction(() => {
      for (const e of entries) {
        const bad = e.vector.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new StoreError('NON_FINITE', `embedding of text ${e.textHash}: value ${bad} is ${e.vector[bad]}`);
        put.run(modelHash, e.textHash, e.vector.length, Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength));
      }
    });
  }

  // ---- runs ----

  startRun(run: { kind: string; modelId?: string; config?: Record<string, unknown>; dataHash?: string }): number {
    if (run.modelId !== undefined) this.requireModel(run.modelId);
    const info = this.transaction(() =>
      this.db
        .prepare('INSERT INTO runs (model_id, kind, config, data_hash, pid) VALUES (?, ?, ?, ?, ?)')
        .run(run.modelId ?? null, run.kind, JSON.stringify(run.config ?? {}), run.dataHash ?? '', process.pid),
    );
    return Number(info.lastInsertRowid);
  }

  finishRun(id: number, result: { status: 'done' | 'failed'; metrics?: Record<string, unknown> }): void {
    const info = this.transaction(() =>
      this.db
        .prepare(`UPDATE runs SET status = ?, metrics = ?, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?`)
        .run(result.status, JSON.stringify(result.metrics ?? {}), id),
    );
    if (info.changes === 0) throw new StoreError('UNKNOWN_RUN', `no run ${id}`);
  }

  runs(filter: { kind?: string } = {}): Run[] {
    const rows = this.db
      .prepare<[{ kind: string | null }], Record<string, unknown>>('SELECT * FROM runs WHERE (@kind IS NULL OR kind = @kind) ORDER BY id')
      .all({ kind: filter.kind ?? null });
    return rows.map((r) => ({
      id: r.id as number,
      modelId: (r.model_id as string | null) ?? null,
      kind: r.kind as string,
      config: JSON.parse(r.config as string),
      dataHash: r.data_hash as string,
      metrics: JSON.parse(r.metrics as string),
      status: r.status as Run['status'],
      startedAt: r.started_at as string,
      finishedAt: (r.finished_at as string | null) ?? null,
    }));
  }
}
