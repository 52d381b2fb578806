/**
 * Maps of the space: every entity of the chosen types projected to 2D, by PCA (the two leading
 * principal components, over every entity) or UMAP (umap-js, on a seeded sample), drawn as an SVG
 * with Vega-Lite (coloured by type, chosen entities labelled, an axis drawn as an arrow between its
 * poles' means) or rendered to PNG with resvg.
 *
 * PCA: the rows centred on their mean μ (taken in float64), C = (X - μ)ᵀ(X - μ) / n by the native
 * matmul on blocks of rows summed in float64, its two leading eigenvectors by subspace iteration,
 * coordinates (x - μ)·v. (XᵀX / n - μμᵀ in float32 cancels away the variance of a space whose mean
 * lies far from the origin.)
 */
import { Resvg } from '@resvg/resvg-js';
import { UMAP } from 'umap-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

import { matmul } from '../native.js';
import { ENTITY_TYPES, type EntityType } from '../store/index.js';
import type { LaborSpace } from '../space.js';
import { checkTypes, SpaceError } from '../errors.js';
import { centreRows, covarianceOf, leadingEigenvectors } from '../util/pca.js';
import { randomIndex, seededRandom } from '../util/random.js';
import { axisPoleMeans } from './analyses.js';

export interface MapOptions {
  types?: readonly EntityType[];
  method?: 'pca' | 'umap';
  /** Entities per map for UMAP (default 3,000); PCA maps every entity. */
  sample?: number;
  /** References to label (default: a few well-known entities of each type that the space has). */
  labels?: readonly string[];
  /** An axis to draw (PCA only): the poles, as for `axis`. */
  axis?: { from: readonly string[]; to: readonly string[] };
  seed?: number;
  /** UMAP progress: epochs done of all. */
  onProgress?: (done: number, total: number) => void;
}

export interface MapPoint {
  ref: string;
  type: EntityType;
  title: string;
  x: number;
  y: number;
}

export interface SpaceMap {
  method: 'pca' | 'umap';
  points: MapPoint[];
  labels: MapPoint[];
  /** PCA: the share of the variance each of the two components carries. */
  explained?: [number, number];
  axis?: { from: { x: number; y: number }; to: { x: number; y: number }; label: string };
}

/** Labelled by default where the space has them. */
export const DEFAULT_LABELS = [
  'occupation:onet:29-1141.00',
  'occupation:onet:51-4041.00',
  'occupation:onet:15-1252.00',
  'occupation:onet:41-2031.00',
  'industry:naics:622110',
  'industry:naics:336111',
  'industry:naics:511210',
  'skill:onet:2.A.1.a',
  'skill:onet:2.C.5.a',
  'firm:sp500:AAPL',
  'firm:sp500:UNH',
];

export async function spaceMap(space: LaborSpace, options: MapOptions = {}): Promise<SpaceMap> {
  const types = checkTypes(options.types) ?? ENTITY_TYPES;
  const method = options.method ?? 'pca';
  if (method !== 'pca' && method !== 'umap') throw new SpaceError('BAD_OPTION', `method must be pca or umap, got ${method}`);
  if (method === 'umap' && options.axis) throw new SpaceError('BAD_OPTION', 'an axis is drawn on PCA maps only (UMAP places no new points)');
  const dim = space.dim;
  let rows: { ref: string; type: EntityType }[] = types.flatMap((type) => space.index.vectors(type)!.refs.map((ref) => ({ ref, type })));
  if (method === 'umap') {
    const sample = options.sample ?? 3000;
    if (!Number.isInteger(sample) || sample < 20) throw new SpaceError('BAD_OPTION', `sample must be an integer of at least 20, got ${sample}`);
    const next = seededRandom(options.seed ?? 1);
    const keep = new Set((options.labels ?? DEFAULT_LABELS).filter((r) => space.store.entity(r)));
    const rest = rows.filter((r) => !keep.has(r.ref));
    for (let i = rest.length - 1; i > 0; i--) {
      const j = randomIndex(next, i + 1);
      [rest[i], rest[j]] = [rest[j], rest[i]];
    }
    rows = [...rows.filter((r) => keep.has(r.ref)), ...rest.slice(0, Math.max(0, sample - keep.size))];
  }
  if (rows.length < 3) throw new SpaceError('NOT_BUILT', 'too few entities to map');
  const x = new Float32Array(rows.length * dim);
  const rowOf = new Map(types.flatMap((type) => space.index.vectors(type)!.refs.map((ref, i) => [ref, { type, i }] as const)));
  rows.forEach((r, i) => {
    const at = rowOf.get(r.ref)!;
    x.set(space.index.vectors(at.type)!.matrix.subarray(at.i * dim, (at.i + 1) * dim), i * dim);
  });
  let coords: Float32Array;
  let explained: [number, number] | undefined;
  let project: ((v: Float32Array) => { x: number; y: number }) | undefined;
  if (method === 'pca') {
    const n = rows.length;
    const mean = centreRows(x, dim); // x is this map's own copy
    const { covariance, trace } = covarianceOf(x, dim);
    const { vectors, values } = leadingEigenvectors(covariance, dim, 2, { seed: options.seed ?? 1 });
    explained = [values[0] / trace, values[1] / trace];
    coords = matmul(x, vectors, { m: n, n: 2, k: dim, transposeB: true });
    const offset = matmul(Float32Array.from(mean), vectors, { m: 1, n: 2, k: dim, transposeB: true });
    project = (v) => {
      const p = matmul(v, vectors, { m: 1, n: 2, k: dim, transposeB: true });
      return { x: p[0] - offset[0], y: p[1] - offset[1] };
    };
  } else {
    const data = rows.map((_, i) => Array.from(x.subarray(i * dim, (i + 1) * dim)));
    const next = seededRandom(options.seed ?? 1);
    const umap = new UMAP({ nComponents: 2, nNeighbors: 15, minDist: 0.1, random: () => (next() + 1) / 2 });
    const epochs = umap.initializeFit(data);
    for (let e = 0; e < epochs; e++) {
      umap.step();
      if (e % 20 === 0 || e === epochs - 1) options.onProgress?.(e + 1, epochs);
      if (e % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    coords = Float32Array.from(umap.getEmbedding().flat());
  }
  const points = rows.map((r, i) => ({ ...r, title: space.title(r.ref), x: coords[2 * i], y: coords[2 * i + 1] }));
  const byRef = new Map(points.map((p) => [p.ref, p]));
  const labels = (options.labels ?? DEFAULT_LABELS).flatMap((ref) => {
    const resolved = options.labels ? space.store.resolve(ref).ref : ref;
    const p = byRef.get(resolved);
    return p ? [p] : [];
  });
  const map: SpaceMap = { method, points, labels, ...(explained ? { explained } : {}) };
  if (options.axis && project) {
    const { from, to } = await axisPoleMeans(space, options.axis.from, options.axis.to);
    map.axis = { from: project(from), to: project(to), label: `${options.axis.from.join(', ')} -> ${options.axis.to.join(', ')}` };
  }
  return map;
}

const TYPE_COLOURS: Record<EntityType, string> = { industry: '#1b9e77', occupation: '#d95f02', skill: '#7570b3', firm: '#e7298a' };

/** The map as an SVG document (Vega-Lite, rendered without a browser). */
export async function mapSvg(map: SpaceMap, title = 'Labor Space'): Promise<string> {
  const axisLabel = map.method === 'pca' ? (i: number) => `PC${i + 1}${map.explained ? ` (${(100 * map.explained[i]).toFixed(1)}% of variance)` : ''}` : (i: number) => `UMAP ${i + 1}`;
  const types = [...new Set(map.points.map((p) => p.type))];
  const layers: unknown[] = [
    {
      data: { values: map.points.map((p) => ({ x: p.x, y: p.y, type: p.type })) },
      mark: { type: 'circle', size: 6, opacity: 0.45 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: axisLabel(0) },
        y: { field: 'y', type: 'quantitative', title: axisLabel(1) },
        color: { field: 'type', type: 'nominal', title: 'type', scale: { domain: types, range: types.map((t) => TYPE_COLOURS[t]) } },
      },
    },
    {
      data: { values: map.labels.map((p) => ({ x: p.x, y: p.y, label: p.title.length > 32 ? `${p.title.slice(0, 30)}…` : p.title })) },
      layer: [
        { mark: { type: 'point', shape: 'diamond', filled: true, color: 'black', size: 40 }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } },
        { mark: { type: 'text', align: 'left', dx: 6, dy: -4, fontSize: 10 }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } } },
      ],
    },
  ];
  if (map.axis) {
    const { from, to, label } = map.axis;
    layers.push({
      data: { values: [{ x: from.x, y: from.y, x2: to.x, y2: to.y }] },
      mark: { type: 'rule', color: 'black', strokeWidth: 2, strokeDash: [6, 3] },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, x2: { field: 'x2' }, y2: { field: 'y2' } },
    });
    layers.push({
      data: { values: [{ x: to.x, y: to.y, label: `axis: ${label}` }] },
      mark: { type: 'text', align: 'left', dx: 8, fontSize: 11, fontWeight: 'bold' },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
    });
  }
  const spec = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, width: 760, height: 560, layer: layers } as unknown as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The SVG rendered to a PNG of the given width (text needs system fonts to appear). */
export function svgToPng(svg: string, width = 1600): Buffer {
  return new Resvg(svg, { fitTo: { mode: 'width', value: width }, background: 'white', font: { loadSystemFonts: true } }).render().asPng();
}
