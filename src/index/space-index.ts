/**
 * One nearest-neighbour index per entity type over a model's vectors, the fastest at build time
 * among those reaching recall@10 >= 0.99 against the exact answer:
 * - 'exact': the native fp32 scan;
 * - 'int8': the native scan of int8 codes for a few candidates, re-scored exactly in fp32. The
 *   codes are of the vectors themselves (a quarter of the bytes of fp32) or, with a `rank`, of
 *   their projection on the type's leading principal components (rank / 4dim of the bytes: 1/32 at
 *   64 of 512 dimensions, so a type of 23k skills is scanned from L2). The principal components
 *   are stored; the codes are derived from the vectors on open;
 * - 'hnsw': hnswlib-node, inner product on unit vectors.
 * HNSW graphs and principal components are written under <home>/indices/<model>/ with a manifest
 * of their sha256 and of the vectors they index, so a stale or corrupt index is noticed on open and
 * rebuilt.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import hnswlib from 'hnswlib-node';

import { matmul, normalize, quantize, type QuantizedRows, topk, topkAsync, topkQuantized, topkQuantizedAsync } from '../native.js';
import { ENTITY_TYPES, type EntityType, type Store, type VectorSet } from '../store/index.js';
import { centreRows, covarianceOf, leadingEigenvectors } from '../util/pca.js';
import { randomMatrix } from '../util/random.js';

const { HierarchicalNSW } = hnswlib;

export const RECALL_TARGET = 0.99;
const HNSW_M = 16;
const HNSW_EF_CONSTRUCTION = 200;
const EF_CANDIDATES = [32, 64, 128, 256, 512];
/** Candidates the int8 scan passes to the exact re-scoring, tried in order. */
const POOL_CANDIDATES = [20, 40, 80, 160, 320];
const PROBE_QUERIES = 200;
/** Types smaller than this are always scanned exactly: HNSW cannot pay off. */
const EXACT_BELOW = 1000;
/** Dimensions the int8 codes are tried in: principal components, and the full dimension. */
const RANKS = [64, 128, Infinity];
/** Subspace iterations for the components: the recall check, not convergence, judges them. */
const PCA_ITERATIONS = 60;

export interface TypeIndexInfo {
  count: number;
  vectorsHash: string;
  method: 'hnsw' | 'int8' | 'exact';
  /** The HNSW graph or, for int8 codes of a projection, the principal components (mean, then rank rows). */
  file?: string;
  sha256?: string;
  ef?: number;
  /** Candidates of the int8 scan re-scored exactly. */
  candidates?: number;
  /** Principal components the int8 codes are of (absent: the full dimension). */
  rank?: number;
  recall: number;
  /** Median single-query latency measured at build, in ms. */
  exactMs: number;
  hnswMs?: number;
  int8Ms?: number;
}

export interface IndexOptions {
  /** Hears what was rebuilt and why. */
  onNote?: (message: string) => void;
  /**
   * 'auto' (default): the fastest method reaching the recall target; 'exact': always the fp32
   * scan; 'hnsw' or 'int8': that method wherever it reaches the recall target.
   */
  method?: 'auto' | 'hnsw' | 'int8' | 'exact';
  /**
   * Dimensions int8 codes are tried in (default 64, 128 and the full dimension): fewer than the
   * vectors' means their projection on that many leading principal components.
   */
  ranks?: readonly number[];
}

/** Bumped when how indices are chosen or built changes: older indices are rebuilt. */
const BUILDER_VERSION = 3;

export interface IndexManifest {
  builder: number;
  modelId: string;
  types: Partial<Record<EntityType, TypeIndexInfo>>;
}

export interface TypeHits {
  /** Row numbers in the type's vector set. */
  rows: number[];
  scores: number[];
}

interface TypeIndex {
  vectors: VectorSet;
  info: TypeIndexInfo;
  hnsw?: InstanceType<typeof HierarchicalNSW>;
  int8?: QuantizedRows;
}

function hashVectors(set: VectorSet): string {
  return createHash('sha256').update(new Uint8Array(set.matrix.buffer, set.matrix.byteOffset, set.matrix.byteLength)).update(set.refs.join('\n')).digest('hex');
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Writes values to path through a renamed temporary file; returns their sha256. */
function writeAtomically(path: string, values: Float32Array): string {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, bytes);
  renameSync(`${path}.tmp`, path);
  return createHash('sha256').update(bytes).digest('hex');
}

/** Seeded query vectors drawn from every type: a cross-type query is the common case. */
function probeQueries(store: Store, modelId: string): Float32Array[] {
  const all = store.vectors(modelId);
  if (!all.refs.length) return [];
  return Array.from(randomMatrix(PROBE_QUERIES, 1, 7), (u) => {
    const row = Math.floor(((u + 1) / 2) * all.refs.length) % all.refs.length;
    return normalize(all.matrix.slice(row * all.dim, (row + 1) * all.dim), all.dim, { inPlace: true });
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * The type's mean and its leading `rank` principal components, in one array: dim values, then
 * rank rows of dim (the layout of its file).
 */
function principalComponents(set: VectorSet, rank: number): Float32Array {
  const x = set.matrix.slice();
  const mean = centreRows(x, set.dim);
  const { vectors } = leadingEigenvectors(covarianceOf(x, set.dim).covariance, set.dim, rank, { maxIterations: PCA_ITERATIONS });
  const out = new Float32Array(set.dim * (rank + 1));
  out.set(mean);
  out.set(vectors, set.dim);
  return out;
}

/** int8 codes of the vectors, or of their centred projection on the first `rank` components of `pca`. */
function codesOf(set: VectorSet, pca?: Float32Array, rank?: number): QuantizedRows {
  const { dim, matrix } = set;
  if (!pca || !rank) return quantize(matrix, dim);
  const projection = pca.slice(dim, dim * (rank + 1));
  const projected = matmul(matrix, projection, { m: matrix.length / dim, n: rank, k: dim, transposeB: true });
  const shift = matmul(pca.subarray(0, dim), projection, { m: 1, n: rank, k: dim, transposeB: true });
  for (let i = 0; i < projected.length; i++) projected[i] -= shift[i % rank];
  return { ...quantize(projected, rank), projection };
}

function readComponents(path: string, dim: number, rank: number): Float32Array {
  const bytes = readFileSync(path);
  const pca = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (pca.length !== dim * (rank + 1)) throw new Error(`${path} has ${pca.length} values, expected ${dim * (rank + 1)}`);
  return pca;
}

const hitsOf = (r: { indices: Int32Array; scores: Float32Array }): TypeHits => ({ rows: Array.from(r.indices), scores: Array.from(r.scores) });

function exactSearch(set: VectorSet, query: Float32Array, k: number): TypeHits {
  return hitsOf(topk(query, set.matrix, set.dim, { k, metric: 'dot', device: 'cpu' }));
}

function int8Search(set: VectorSet, codes: QuantizedRows, query: Float32Array, k: number, candidates: number): TypeHits {
  return hitsOf(topkQuantized(query, codes, set.matrix, set.dim, { k, candidates }));
}

function hnswSearch(index: InstanceType<typeof HierarchicalNSW>, query: Float32Array, k: number, count: number): TypeHits {
  const r = index.searchKnn(Array.from(query), Math.min(k, count));
  return { rows: r.neighbors, scores: r.distances.map((d) => 1 - d) };
}

export class SpaceIndex {
  readonly modelId: string;
  private readonly types = new Map<EntityType, TypeIndex>();

  private constructor(modelId: string) {
    this.modelId = modelId;
  }

  get manifest(): IndexManifest {
    return { builder: BUILDER_VERSION, modelId: this.modelId, types: Object.fromEntries([...this.types].map(([t, v]) => [t, v.info])) };
  }

  vectors(type: EntityType): VectorSet | undefined {
    return this.types.get(type)?.vectors;
  }

  /** The k best rows of one type for a unit query vector; `exact` scans even where HNSW is built. */
  search(type: EntityType, query: Float32Array, k: number, exact = false): TypeHits {
    const index = this.types.get(type);
    if (!index || index.vectors.refs.length === 0) return { rows: [], scores: [] };
    if (exact) return exactSearch(index.vectors, query, k);
    if (index.hnsw) return hnswSearch(index.hnsw, query, k, index.vectors.refs.length);
    if (index.int8) return int8Search(index.vectors, index.int8, query, k, Math.max(index.info.candidates!, k));
    return exactSearch(index.vectors, query, k);
  }

  /**
   * search() with the scans on the libuv pool, so a server's event loop keeps answering while they
   * run, and searches of several types run at once (HNSW queries, a few microseconds, stay inline).
   * Short int8 scans inline instead held the loop for all four types in turn: at 1,000 reference
   * queries a second on 2 cores its p99 went from 6-7 ms to 150-340 ms.
   */
  async searchAsync(type: EntityType, query: Float32Array, k: number, exact = false): Promise<TypeHits> {
    const index = this.types.get(type);
    if (!index || index.vectors.refs.length === 0) return { rows: [], scores: [] };
    const { vectors } = index;
    if (!exact && index.hnsw) return hnswSearch(index.hnsw, query, k, vectors.refs.length);
    if (!exact && index.int8) return hitsOf(await topkQuantizedAsync(query, index.int8, vectors.matrix, vectors.dim, { k, candidates: Math.max(index.info.candidates!, k) }));
    return hitsOf(await topkAsync(query, vectors.matrix, vectors.dim, { k, metric: 'dot', device: 'cpu' }));
  }

  /**
   * The k best rows of one type for each of many unit queries (m x dim), on the libuv pool. HNSW
   * answers one query at a time on the calling thread, so types indexed by it are scanned exactly
   * instead: the batched scan costs about what m HNSW queries do, and blocks nothing.
   */
  async searchManyAsync(type: EntityType, queries: Float32Array, k: number): Promise<TypeHits[]> {
    const index = this.types.get(type);
    const m = queries.length / (index?.vectors.dim || 1);
    if (!index || index.vectors.refs.length === 0) return Array.from({ length: m }, () => ({ rows: [], scores: [] }));
    const { vectors } = index;
    const found = index.int8
      ? await topkQuantizedAsync(queries, index.int8, vectors.matrix, vectors.dim, { k, candidates: Math.max(index.info.candidates!, k) })
      : await topkAsync(queries, vectors.matrix, vectors.dim, { k, metric: 'dot', device: 'cpu' });
    return Array.from({ length: m }, (_, i) => ({
      rows: Array.from(found.indices.subarray(i * found.k, (i + 1) * found.k)),
      scores: Array.from(found.scores.subarray(i * found.k, (i + 1) * found.k)),
    }));
  }

  /** Opens the index of a model, rebuilding each type whose files are missing, corrupt or older than its vectors. */
  static open(store: Store, modelId: string, dir: string, options: IndexOptions = {}): SpaceIndex {
    const { onNote, method = 'auto', ranks = RANKS } = options;
    const manifestPath = join(dir, 'manifest.json');
    let manifest: IndexManifest | undefined;
    if (existsSync(manifestPath)) {
      try {
        manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as IndexManifest;
      } catch {
        onNote?.('index manifest unreadable: rebuilding');
      }
    }
    const space = new SpaceIndex(modelId);
    let changed = false;
    let probes: Float32Array[] | undefined; // read only if some type is (re)built
    for (const type of ENTITY_TYPES) {
      const vectors = store.vectors(modelId, { type });
      vectors.matrix = normalize(vectors.matrix, vectors.dim || 1, { inPlace: true });
      const vectorsHash = hashVectors(vectors);
      const prior = manifest?.modelId === modelId && manifest.builder === BUILDER_VERSION ? manifest.types[type] : undefined;
      const problem = SpaceIndex.problem(prior, vectorsHash, dir, method);
      if (!problem) {
        const index: TypeIndex = { vectors, info: prior! };
        if (prior!.method === 'int8') index.int8 = codesOf(vectors, prior!.rank ? readComponents(join(dir, prior!.file!), vectors.dim, prior!.rank) : undefined, prior!.rank);
        if (prior!.method === 'hnsw') {
          index.hnsw = new HierarchicalNSW('ip', vectors.dim);
          index.hnsw.readIndexSync(join(dir, prior!.file!));
          index.hnsw.setEf(prior!.ef!);
        }
        space.types.set(type, index);
        continue;
      }
      if (vectors.refs.length) onNote?.(`indexing ${vectors.refs.length} ${type} vectors (${problem})`);
      probes ??= probeQueries(store, modelId);
      space.types.set(type, SpaceIndex.buildType(type, vectors, vectorsHash, probes, dir, method, ranks));
      changed = true;
    }
    if (changed) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${manifestPath}.tmp`, JSON.stringify(space.manifest, null, 2));
      renameSync(`${manifestPath}.tmp`, manifestPath);
      const used = new Set(Object.values(space.manifest.types).map((t) => t.file));
      for (const f of readdirSync(dir)) if ((f.endsWith('.hnsw') || f.endsWith('.pca')) && !used.has(f)) rmSync(join(dir, f), { force: true });
    }
    return space;
  }

  private static problem(info: TypeIndexInfo | undefined, vectorsHash: string, dir: string, method: IndexOptions['method']): string | undefined {
    if (!info) return 'no index yet';
    if (info.vectorsHash !== vectorsHash) return 'vectors changed';
    if (method === 'exact' && info.method !== 'exact') return 'exact search asked for';
    if ((method === 'hnsw' || method === 'int8') && info.method !== method && info.count >= 1) return `${method} asked for`;
    if (info.file) {
      const path = join(dir, info.file);
      if (!existsSync(path)) return `${info.file} is missing`;
      if (fileHash(path) !== info.sha256) return `${info.file} is corrupt (checksum mismatch)`;
    }
    return undefined;
  }

  /** Builds one type's index, measuring recall and latency to choose HNSW or the exact scan. */
  private static buildType(
    type: EntityType,
    vectors: VectorSet,
    vectorsHash: string,
    probes: Float32Array[],
    dir: string,
    method: IndexOptions['method'],
    tried: readonly number[],
  ): TypeIndex {
    const n = vectors.refs.length;
    const dim = vectors.dim;
    const base: TypeIndexInfo = { count: n, vectorsHash, method: 'exact', recall: 1, exactMs: 0 };
    if (n === 0) return { vectors, info: base };
    const exact = probes.map((q) => exactSearch(vectors, q, 10));
    base.exactMs = median(probes.map((q) => timeMs(() => exactSearch(vectors, q, 10))));
    if (method === 'exact') return { vectors, info: base };
    const recallOf = (search: (q: Float32Array) => TypeHits) => {
      let hits = 0;
      let total = 0;
      probes.forEach((q, i) => {
        const got = new Set(search(q).rows);
        for (const r of exact[i].rows) hits += got.has(r) ? 1 : 0;
        total += exact[i].rows.length;
      });
      return hits / total;
    };

    // int8 scans, of the vectors and of their projections on the leading principal components:
    // for each, the fewest candidates that reach the recall target; the fastest of them is kept.
    let int8: { codes: QuantizedRows; rank?: number; candidates: number; recall: number; ms: number } | undefined;
    let pca: Float32Array | undefined;
    if (method === 'auto' || method === 'int8') {
      const ranks = [...new Set(tried.map((r) => (r < dim && r * 4 <= n ? r : undefined)))];
      const most = Math.max(0, ...ranks.map((r) => r ?? 0));
      pca = most ? principalComponents(vectors, most) : undefined;
      for (const rank of ranks) {
        const codes = codesOf(vectors, pca, rank);
        for (const candidates of POOL_CANDIDATES) {
          const recall = recallOf((q) => int8Search(vectors, codes, q, 10, candidates));
          if (recall >= RECALL_TARGET) {
            const ms = median(probes.map((q) => timeMs(() => int8Search(vectors, codes, q, 10, candidates))));
            if (!int8 || ms < int8.ms) int8 = { codes, rank, candidates, recall, ms };
            break;
          }
        }
      }
    }
    const withInt8 = (info: TypeIndexInfo): TypeIndex => {
      if (!int8 || !(method === 'int8' || int8.ms < Math.min(info.exactMs, info.hnswMs ?? Infinity))) return { vectors, info: { ...info, int8Ms: int8?.ms } };
      const chosen: TypeIndexInfo = { ...info, method: 'int8', candidates: int8.candidates, recall: int8.recall, int8Ms: int8.ms };
      if (int8.rank) {
        chosen.rank = int8.rank;
        chosen.file = `${type}.pca`;
        chosen.sha256 = writeAtomically(join(dir, chosen.file), pca!.subarray(0, dim * (int8.rank + 1)));
      }
      return { vectors, int8: int8.codes, info: chosen };
    };
    if (method === 'int8' || (method === 'auto' && n < EXACT_BELOW)) return withInt8(base);

    const hnsw = new HierarchicalNSW('ip', dim);
    hnsw.initIndex(n, HNSW_M, HNSW_EF_CONSTRUCTION, 100);
    for (let i = 0; i < n; i++) hnsw.addPoint(Array.from(vectors.matrix.subarray(i * dim, (i + 1) * dim)), i);
    let chosen: { ef: number; recall: number; ms: number } | undefined;
    for (const ef of EF_CANDIDATES) {
      hnsw.setEf(ef);
      const recall = recallOf((q) => hnswSearch(hnsw, q, 10, n));
      if (recall >= RECALL_TARGET) {
        chosen = { ef, recall, ms: median(probes.map((q) => timeMs(() => hnswSearch(hnsw, q, 10, n)))) };
        break;
      }
    }
    const fastestOther = Math.min(base.exactMs, int8?.ms ?? Infinity);
    if (!chosen || (method === 'auto' && chosen.ms >= fastestOther)) return withInt8({ ...base, hnswMs: chosen?.ms });
    mkdirSync(dir, { recursive: true });
    const file = `${type}.hnsw`;
    const tmp = join(dir, `${file}.tmp`);
    hnsw.writeIndexSync(tmp);
    renameSync(tmp, join(dir, file));
    rmSync(tmp, { force: true });
    const info: TypeIndexInfo = { ...base, method: 'hnsw', file, sha256: fileHash(join(dir, file)), ef: chosen.ef, recall: chosen.recall, hnswMs: chosen.ms, int8Ms: int8?.ms };
    return { vectors, info, hnsw };
  }
}
