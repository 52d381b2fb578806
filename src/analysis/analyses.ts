/**
 * The analyses on an open space: vector arithmetic, axes between two poles (with bootstrap
 * intervals) and shocks with their ripple. The sums of vectors run through the native `combine`
 * (a bootstrap's many through one product), the scoring of every entity through the native
 * `project` and the index's search, on the libuv pool: a server's event loop stays free.
 */
import { combine, meanRows, normalize, projectAsync, similarityAsync, topkAsync } from '../native.js';
import { checkCount, checkTypes, SpaceError } from '../errors.js';
import { ENTITY_TYPES, type EntityType } from '../store/index.js';
import type { LaborSpace, NearHit } from '../space.js';
import { randomIndex, seededRandom } from '../util/random.js';
import { linearize, type Operand } from './expr.js';
import { type CompiledRippleGraph, compileRippleGraph, rippleNodes, type WeightedEdge } from './ripple.js';

/** Unit vectors of operands, rows in order: references from the space, texts embedded in one batch. */
async function operandVectors(space: LaborSpace, operands: readonly Operand[], signal?: AbortSignal): Promise<Float32Array> {
  const dim = space.dim;
  const out = new Float32Array(operands.length * dim);
  const texts = operands.flatMap((o, i) => (o.kind === 'text' ? [{ i, text: o.text }] : []));
  const embedded = texts.length ? await space.embed(texts.map((t) => t.text), signal) : new Float32Array(0);
  texts.forEach((t, j) => out.set(embedded.subarray(j * dim, (j + 1) * dim), t.i * dim));
  operands.forEach((o, i) => {
    if (o.kind === 'ref') out.set(space.vectorOf(o.ref), i * dim);
  });
  return out;
}

/** Throws `message` when a vector is (to float rounding) zero: it points nowhere. */
function requireDirection(vector: Float32Array, message: string): void {
  let norm = 0;
  for (const v of vector) norm += v * v;
  if (!(norm > 1e-12)) throw new SpaceError('BAD_QUERY', message);
}

const NO_AXIS = 'the axis has no direction: mean(to) - mean(from) is the zero vector (its poles cancel out)';

/** The unit vector of a linear expression, with the references it names. */
export async function expressionVector(space: LaborSpace, expr: string, signal?: AbortSignal): Promise<{ vector: Float32Array; refs: string[] }> {
  const { terms } = linearize(expr);
  const rows = await operandVectors(space, terms.map((t) => t.operand), signal);
  // Scaled so the largest is 1: the direction is the same, and 1e308 fits a float32 weight.
  const largest = Math.max(...terms.map((t) => Math.abs(t.coefficient)));
  const sum = combine(rows, space.dim, {
    indices: Int32Array.from(terms, (_, i) => i),
    weights: Float32Array.from(terms, (t) => t.coefficient / largest),
    offsets: Int32Array.of(0, terms.length),
  });
  requireDirection(sum, `"${expr}" is the zero vector: its operands cancel out`);
  const refs = terms.flatMap((t) => (t.operand.kind === 'ref' ? [space.resolveRef(t.operand.ref)] : []));
  return { vector: normalize(sum, space.dim), refs };
}

/** Lets a caller (the server, for a client gone or a request out of time) stop an analysis between its steps. */
export interface Cancellable {
  signal?: AbortSignal;
}

export interface ArithOptions extends Cancellable {
  types?: readonly EntityType[];
  k?: number;
  /** Keep the expression's own references in the results (left out by default). */
  includeOperands?: boolean;
}

export interface ArithResult {
  expression: string;
  results: Partial<Record<EntityType, NearHit[]>>;
}

/** Nearest entities of each type to the vector an expression makes. */
export async function arith(space: LaborSpace, expr: string, options: ArithOptions = {}): Promise<ArithResult> {
  const types = checkTypes(options.types) ?? ENTITY_TYPES;
  const k = checkCount('k', options.k ?? 10, 1000);
  const { vector, refs } = await expressionVector(space, expr, options.signal);
  const skip = new Set(options.includeOperands ? [] : refs);
  const found = await Promise.all(types.map((type) => space.index.searchAsync(type, vector, k + skip.size)));
  const results: ArithResult['results'] = {};
  for (const [t, type] of types.entries()) {
    const set = space.index.vectors(type)!;
    const hits = found[t];
    results[type] = hits.rows
      .map((row, i) => ({ ref: set.refs[row], title: space.title(set.refs[row]), score: hits.scores[i] }))
      .filter((h) => !skip.has(h.ref))
      .slice(0, k);
  }
  return { expression: expr, results };
}

// ---- axes ----

/** Named axes: the poles people ask for most. */
export const NAMED_AXES: Record<string, { from: string[]; to: string[]; description: string }> = {
  'manufacturing-healthcare': {
    from: ['industry:naics:31-33'],
    to: ['industry:naics:62'],
    description: 'NAICS 31-33 Manufacturing (every code in the sector) to 62 Health Care and Social Assistance',
  },
};

/** Splits a comma-separated list of poles; commas inside quoted texts stay. */
export function splitPoles(list: string): string[] {
  const out: string[] = [];
  let current = '';
  let quote = '';
  for (const c of list) {
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === ',') {
      out.push(current.trim());
      current = '';
      continue;
    }
    current += c;
  }
  if (quote) throw new SpaceError('BAD_QUERY', `unterminated quoted text in poles: ${list}`);
  out.push(current.trim());
  return out.filter((p) => p.length > 0);
}

/** A NAICS sector (two digits, or a range like 31-33) stands for every industry code in it. */
function poleMembers(space: LaborSpace, pole: string, name: string): Operand[] {
  const quoted = /^"(.*)"$|^'(.*)'$/s.exec(pole.trim());
  const text = quoted ? quoted[1] ?? quoted[2] : pole;
  if (!text.trim()) throw new SpaceError('BAD_QUERY', `${name} is blank: a pole is a reference or some text`);
  if (quoted) return [{ kind: 'text', text: text.trim(), position: 0 }];
  if (!/^[a-z]+:/.test(pole)) return [{ kind: 'text', text: pole, position: 0 }];
  const entity = space.store.resolve(space.resolveRef(pole));
  const sector = entity.type === 'industry' && entity.source === 'naics' ? /^(\d\d)(?:-(\d\d))?$/.exec(entity.code) : null;
  if (!sector) return [{ kind: 'ref', ref: entity.ref, position: 0 }];
  const lo = Number(sector[1]), hi = Number(sector[2] ?? sector[1]);
  const set = space.index.vectors('industry')!;
  return set.refs
    .filter((ref) => {
      const code = ref.slice('industry:naics:'.length);
      const two = Number(code.slice(0, 2));
      return ref.startsWith('industry:naics:') && two >= lo && two <= hi;
    })
    .map((ref) => ({ kind: 'ref', ref, position: 0 }));
}

/** The members of both ends of an axis. */
function axisMembers(space: LaborSpace, from: readonly string[], to: readonly string[]): { fromOps: Operand[]; toOps: Operand[] } {
  if (!from.length || !to.length) throw new SpaceError('BAD_QUERY', 'an axis needs at least one pole at each end (--from and --to)');
  return { fromOps: from.flatMap((p, i) => poleMembers(space, p, `from/${i}`)), toOps: to.flatMap((p, i) => poleMembers(space, p, `to/${i}`)) };
}

/** Mean unit vectors of the two ends of an axis (its members as `axis` reads them). */
export async function axisPoleMeans(space: LaborSpace, from: readonly string[], to: readonly string[], signal?: AbortSignal): Promise<{ from: Float32Array; to: Float32Array }> {
  const { fromOps, toOps } = axisMembers(space, from, to);
  const rows = await operandVectors(space, [...fromOps, ...toOps], signal);
  const means = meanRows(rows, space.dim, [fromOps.map((_, i) => i), toOps.map((_, i) => fromOps.length + i)]);
  const [fromMean, toMean] = [means.slice(0, space.dim), means.slice(space.dim)];
  requireDirection(toMean.map((v, i) => v - fromMean[i]), NO_AXIS);
  return { from: fromMean, to: toMean };
}

export interface AxisOptions extends Cancellable {
  types?: readonly EntityType[];
  /** Entities listed at each end, per type (default 10). */
  top?: number;
  /** Bootstrap resamples of the pole members for the intervals (default 200; 0: none). */
  bootstrap?: number;
  seed?: number;
  /** References whose position is always reported. */
  positions?: readonly string[];
}

export interface AxisHit extends NearHit {
  /** The 2.5% and 97.5% points of the score over the bootstrap resamples. */
  low?: number;
  high?: number;
}

export interface AxisResult {
  axis: { from: string[]; to: string[]; fromMembers: number; toMembers: number; formula: string };
  /** Per type, the entities nearest the `to` pole (highest score first). */
  results: Partial<Record<EntityType, AxisHit[]>>;
  /** Per type, the entities nearest the `from` pole (lowest score first). */
  fromEnd: Partial<Record<EntityType, AxisHit[]>>;
  positions: AxisHit[];
}

/**
 * Scores every entity on the axis from one set of poles to another:
 * score(x) = cos(x, mean(to) - mean(from)), the means over the poles' unit vectors. The bootstrap
 * redraws each pole's members with replacement and reports the middle 95% of each score.
 */
export async function axis(space: LaborSpace, from: readonly string[], to: readonly string[], options: AxisOptions = {}): Promise<AxisResult> {
  const types = checkTypes(options.types) ?? ENTITY_TYPES;
  const top = checkCount('top', options.top ?? 10, 1000);
  const resamples = options.bootstrap ?? 200;
  if (!Number.isInteger(resamples) || resamples < 0 || resamples > 10000) throw new SpaceError('BAD_OPTION', `bootstrap must be an integer from 0 to 10000, got ${resamples}`);
  const { fromOps, toOps } = axisMembers(space, from, to);
  const dim = space.dim;
  const members = await operandVectors(space, [...toOps, ...fromOps], options.signal);
  const nt = toOps.length, nf = fromOps.length;
  // Row 0: the axis; rows 1..: the bootstrap axes, each a resample of both poles. Row b is
  // sum_j weights[b][j] members[j], one product of the weights and the members (on the libuv pool:
  // with 1,000 resamples of 740 members it is 4e8 multiply-adds).
  const next = seededRandom(options.seed ?? 1);
  const draw = (n: number) => randomIndex(next, n);
  const nm = nt + nf, width = resamples + 1;
  const weights = new Float32Array(width * nm);
  for (let b = 0; b < width; b++) {
    for (let i = 0; i < nt; i++) weights[b * nm + (b === 0 ? i : draw(nt))] += 1 / nt;
    for (let i = 0; i < nf; i++) weights[b * nm + nt + (b === 0 ? i : draw(nf))] -= 1 / nf;
  }
  const membersT = new Float32Array(dim * nm);
  for (let j = 0; j < nm; j++) for (let p = 0; p < dim; p++) membersT[p * nm + j] = members[j * dim + p];
  const directions = await similarityAsync(weights, membersT, nm, 'dot');
  requireDirection(directions.subarray(0, dim), NO_AXIS);
  const hitOf = (scores: Float32Array, row: number, ref: string): AxisHit => {
    const hit: AxisHit = { ref, title: space.title(ref), score: scores[row * width] };
    if (resamples > 0) {
      const boot = scores.slice(row * width + 1, (row + 1) * width).sort();
      hit.low = boot[Math.floor(0.025 * (boot.length - 1))];
      hit.high = boot[Math.ceil(0.975 * (boot.length - 1))];
    }
    return hit;
  };
  /** The hits of some rows of a type: their scores on every resample (only theirs are computed). */
  const hitsOf = async (type: EntityType, rows: readonly number[]): Promise<AxisHit[]> => {
    const set = space.index.vectors(type)!;
    const chosen = new Float32Array(rows.length * dim);
    rows.forEach((row, i) => chosen.set(set.matrix.subarray(row * dim, (row + 1) * dim), i * dim));
    const scores = await projectAsync(chosen, directions, dim);
    return rows.map((row, i) => hitOf(scores, i, set.refs[row]));
  };
  const results: AxisResult['results'] = {}, fromEnd: AxisResult['fromEnd'] = {};
  for (const type of types) {
    options.signal?.throwIfAborted();
    const set = space.index.vectors(type)!;
    // Every entity on the axis (row 0), then the ends as the top k of that one-column matrix
    // against +1 and -1 (equal scores by ascending row), all on the libuv pool.
    const axisScores = await projectAsync(set.matrix, directions.subarray(0, dim), dim);
    const ends = await topkAsync(Float32Array.of(1, -1), axisScores, 1, { k: top, metric: 'dot', device: 'cpu' });
    const [toEnd, otherEnd] = await Promise.all([0, 1].map((q) => hitsOf(type, Array.from(ends.indices.subarray(q * ends.k, (q + 1) * ends.k)))));
    results[type] = toEnd;
    fromEnd[type] = otherEnd;
  }
  const wanted = [...new Set(options.positions?.map((r) => space.resolveRef(r)) ?? [])];
  const positions = await Promise.all(wanted.map(async (ref) => hitOf(await projectAsync(space.vectorOf(ref), directions, dim), 0, ref)));
  return {
    axis: { from: [...from], to: [...to], fromMembers: nf, toMembers: nt, formula: 'cos(x, mean(to) - mean(from))' },
    results,
    fromEnd,
    positions,
  };
}

// ---- shocks ----

export interface ShockHit {
  ref: string;
  title: string;
  /** cos(entity, shock direction). */
  direct: number;
  /** Exposure carried along the relations (see ripple.ts); absent where no relation carries any. */
  rippled?: number;
}

export interface ShockOptions extends Cancellable {
  types?: readonly EntityType[];
  /** Entities listed per type (default 10), ranked by rippled exposure where there is one. */
  top?: number;
  /** Fill `all` with every entity of the chosen types (default true; false leaves it empty). */
  all?: boolean;
}

export interface ShockResult {
  direction: string;
  results: Partial<Record<EntityType, ShockHit[]>>;
  /** Every entity of the chosen types, in the same order, for files (empty when `all: false`). */
  all: (ShockHit & { type: EntityType })[];
}

const SKILL_WEIGHTS: Record<string, number | 'weight'> = { onet_skill: 'weight', onet_knowledge: 'weight', esco_essential_skill: 1, esco_optional_skill: 0.5 };

/** The ripple graph of an open space, with each type's row -> node numbers: read from the store once (~300k relations). */
const rippleGraphs = new WeakMap<LaborSpace, { graph: CompiledRippleGraph; nodeOfRow: Map<EntityType, Int32Array> }>();

function rippleGraph(space: LaborSpace) {
  let cached = rippleGraphs.get(space);
  if (!cached) {
    const edges = (kind: string, weight: number | 'weight'): WeightedEdge[] =>
      space.store.relationsOfKind(kind).map((r) => ({ to: r.source, from: r.target, weight: weight === 'weight' ? r.weight : weight }));
    const graph = compileRippleGraph({
      occupationSkills: Object.entries(SKILL_WEIGHTS).flatMap(([kind, w]) => edges(kind, w)),
      sectorOccupations: edges('oews_employment', 'weight'),
      industryParents: edges('naics_parent', 1),
      firmIndustries: edges('firm_industry', 'weight'),
    });
    const nodeOfRow = new Map(ENTITY_TYPES.map((type) => [type, Int32Array.from(space.index.vectors(type)?.refs ?? [], (ref) => graph.nodes.get(ref) ?? -1)]));
    rippleGraphs.set(space, (cached = { graph, nodeOfRow }));
  }
  return cached;
}

/** Reads the relations a shock ripples along now, so that the first shock does not wait for them. */
export function prepareShock(space: LaborSpace): void {
  rippleGraph(space);
}

/** Direct exposure of every entity to a shock direction, and its ripple along the relations. */
export async function shock(space: LaborSpace, direction: string, options: ShockOptions = {}): Promise<ShockResult> {
  checkTypes(options.types);
  checkCount('top', options.top ?? 10, 100000);
  const { vector } = await expressionVector(space, direction, options.signal);
  return shockAlong(space, direction, vector, options);
}

/** The shock along a direction vector (space.dim values), named `direction` in the result. */
export async function shockAlong(space: LaborSpace, direction: string, vector: Float32Array, options: ShockOptions = {}): Promise<ShockResult> {
  const types = checkTypes(options.types) ?? ENTITY_TYPES;
  const top = checkCount('top', options.top ?? 10, 100000);
  const { graph, nodeOfRow } = rippleGraph(space);
  const direct = new Map<EntityType, Float32Array>();
  const directOfNode = new Float64Array(graph.nodes.size).fill(NaN);
  for (const type of ENTITY_TYPES) {
    const set = space.index.vectors(type);
    if (!set) continue;
    const scores = await projectAsync(set.matrix, vector, space.dim);
    direct.set(type, scores);
    nodeOfRow.get(type)!.forEach((node, row) => {
      if (node >= 0) directOfNode[node] = scores[row];
    });
  }
  options.signal?.throwIfAborted();
  const rippled = rippleNodes(directOfNode, graph);
  const all: ShockResult['all'] = [];
  const results: ShockResult['results'] = {};
  for (const type of types) {
    const refs = space.index.vectors(type)!.refs;
    const scores = direct.get(type)!, nodes = nodeOfRow.get(type)!;
    const ripples = Float64Array.from(nodes, (node) => (node >= 0 ? rippled[node] : NaN));
    // Rippled exposure first (entities it reaches, then the rest), direct exposure within ties:
    // industries below the sector level share their sector's rippled value. Rows are sorted as
    // numbers and objects made only for the hits returned (every entity's when `all` is asked).
    const rank = (r: number) => (Number.isNaN(ripples[r]) ? -Infinity : ripples[r]);
    const order = Uint32Array.from(refs.keys()).sort((a, b) => rank(b) - rank(a) || scores[b] - scores[a] || a - b);
    const hitOf = (row: number): ShockHit => ({ ref: refs[row], title: space.title(refs[row]), direct: scores[row], ...(Number.isNaN(ripples[row]) ? {} : { rippled: ripples[row] }) });
    results[type] = Array.from(order.subarray(0, top), hitOf);
    if (options.all !== false) for (const row of order) all.push({ ...hitOf(row), type });
  }
  return { direction, results, all };
}
