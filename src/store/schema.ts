/**
 * Versioned schema migrations. Each entry moves the database from version i to i + 1 and runs in
 * one transaction; `PRAGMA user_version` records how far a database has come. Append, never edit.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE entities (
    id      INTEGER PRIMARY KEY,
    type    TEXT NOT NULL CHECK (type IN ('industry', 'occupation', 'skill', 'firm')),
    source  TEXT NOT NULL CHECK (length(source) > 0),
    code    TEXT NOT NULL CHECK (length(code) > 0),
    title   TEXT NOT NULL CHECK (length(title) > 0),
    text    TEXT NOT NULL CHECK (length(trim(text)) > 0),
    version TEXT NOT NULL DEFAULT '',
    extra   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
    UNIQUE (type, source, code)
  );
  CREATE INDEX entities_by_code ON entities (code);

  CREATE TABLE relations (
    id         INTEGER PRIMARY KEY,
    source_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    target_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (length(kind) > 0),
    weight     REAL NOT NULL DEFAULT 1,
    provenance TEXT NOT NULL DEFAULT '',
    UNIQUE (source_id, target_id, kind)
  );
  CREATE INDEX relations_by_target ON relations (target_id, kind);
  CREATE INDEX relations_by_kind ON relations (kind);

  CREATE TABLE models (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    dim        INTEGER NOT NULL CHECK (dim > 0),
    hash       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    extra      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extra))
  );

  CREATE TABLE vectors (
    entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    model_id  TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    dim       INTEGER NOT NULL,
    text_hash TEXT NOT NULL DEFAULT '',
    data      BLOB NOT NULL CHECK (length(data) = 4 * dim),
    PRIMARY KEY (entity_id, model_id)
  );

  CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    model_id    TEXT REFERENCES models (id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    data_hash   TEXT NOT NULL DEFAULT '',
    metrics     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
  );
  `,
  `
  -- Embeddings by (model hash, text hash): a rebuild re-encodes only texts that changed.
  CREATE TABLE embedding_cache (
    model_hash TEXT NOT NULL,
    text_hash  TEXT NOT NULL,
    dim        INTEGER NOT NULL,
    data       BLOB NOT NULL CHECK (length(data) = 4 * dim),
    PRIMARY KEY (model_hash, text_hash)
  ) WITHOUT ROWID;
  `,
  `
  -- Runs remember the process that started them, so that one killed midway is marked interrupted
  -- (SQLite cannot change a CHECK constraint in place: the table is rebuilt).
  CREATE TABLE runs_new (
    id          INTEGER PRIMARY KEY,
    model_id    TEXT REFERENCES models (id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    data_hash   TEXT NOT NULL DEFAULT '',
    metrics     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    pid         INTEGER
  );
  INSERT INTO runs_new (id, model_id, kind, config, data_hash, metrics, status, started_at, finished_at)
    SELECT id, model_id, kind, config, data_hash, metrics, status, started_at, finished_at FROM runs;
  DROP TABLE runs;
  ALTER TABLE runs_new RENAME TO runs;
  `,
];
