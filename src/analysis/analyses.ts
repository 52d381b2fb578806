/**
 * The analyses on an open space: vector arithmetic, axes between two poles (with bootstrap
 * intervals) and shocks with their ripple. The sums of vectors run through the native `combine`,
 * the scoring of every entity through the native `project` and the index's search.
 */
import { combine, meanRows, normalize, project } from '../native.js';
import { ENTITY_TYPES, type EntityType, isEntityType, StoreError } from '../store/index.js';
import type { LaborSpace, NearHit } from '../space.js';
import { SpaceError } from '../space.js';
import { seededRandom } from '../util/random.js';
import { linearize, type Operand } from './expr.js';
import { ripple, type WeightedEdge } from './ripple.js';

function checkTypes(types: readonly string[] | undefined): readonly EntityType[] {
  const list = types ?? ENTITY_TYPES;
  for (const t of list) if (!isEntityType(t)) throw new SpaceError('BAD_OPTION', `unknown type "${t}" (expected ${ENTITY_TYPES.join(', ')})`);
  return list as readonly EntityType[];
}

function checkCount(name: string, n: number, max: number): number {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new SpaceError('BAD_OPTION', `${name} must be an integer from 1 to ${max}, got ${n}`);
  return n;
}

function resolveRef(space: LaborSpace, ref: string): string {
  try {
    return space.store.resolve(ref).ref;
  } catch (e) {
    throw e instanceof StoreError ? new SpaceError('BAD_QUERY', e.message) : e;
  }
}

/** Unit vectors of operands, rows in order: references from the space, texts embedded in one batch. */
async function operandVectors(space: LaborSpace, operands: readonly Operand[]): Promise<Float32Array> {
  const dim = space.dim;
  const out = new Float32Array(operands.length * dim);
  const texts = operands.flatMap((o, i) => (o.kind === 'text' ? [{ i, text: o.text }] : []));
  const embedded = texts.length ? await space.embed(texts.map((t) => t.text)) : new Float32Array(0);
  texts.forEach((t, j) => out.set(embedded.subarray(j * dim, (j + 1) * dim), t.i * dim));
  operands.forEach((o, i) => {
    if (o.kind === 'ref') out.set(space.vectorOf(resolveRef(space, o.ref)), i * dim);
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
export async function expressionVector(space: LaborSpace, expr: string): Promise<{ vector: Float32Array; refs: string[] }> {
  const { terms } = linearize(expr);
  const rows = await operandVectors(space, terms.map((t) => t.operand));
  const sum = combine(rows, space.dim, {
    indices: Int32Array.from(terms, (_, i) => i),
    weights: Float32Array.from(terms, (t) => t.coefficient),
    offsets: Int32Array.of(0, terms.length),
  });
  requireDirection(sum, `"${expr}" is the zero vector: its operands cancel out`);
  const refs = terms.flatMap((t) => (t.operand.kind === 'ref' ? [resolveRef(space, t.operand.ref)] : []));
  return { vector: normalize(sum, space.dim), refs };
}

export interface ArithOptions {
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
  const types = checkTypes(options.types);
  const k = checkCount('k', options.k ?? 10, 1000);
  const { vector, refs } = await expressionVector(space, expr);
  const skip = new Set(options.includeOperands ? [] : refs);
  const results: ArithResult['results'] = {};
  for (const type of types) {
    const set = space.index.vectors(type)!;
    const hits = space.index.search(type, vector, k + skip.size, false);
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
function poleMembers(space: LaborSpace, pole: string): Operand[] {
  const quoted = /^"(.*)"$|^'(.*)'$/s.exec(pole);
  if (quoted) return [{ kind: 'text', text: (quoted[1] ?? quoted[2]).trim(), position: 0 }];
  if (!/^[a-z]+:/.test(pole)) return [{ kind: 'text', text: pole, position: 0 }];
  const entity = space.store.resolve(resolveRef(space, pole));
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
  return { fromOps: from.flatMap((p) => poleMembers(space, p)), toOps: to.flatMap((p) => poleMembers(space, p)) };
}

/** Mean unit vectors of the two ends of an axis (its members as `axis` reads them). */
export async function axisPoleMeans(space: LaborSpace, from: readonly string[], to: readonly string[]): Promise<{ from: Float32Array; to: Float32Array }> {
  const { fromOps, toOps } = axisMembers(space, from, to);
  const rows = await operandVectors(space, [...fromOps, ...toOps]);
  const means = meanRows(rows, space.dim, [fromOps.map((_, i) => i), toOps.map((_, i) => fromOps.length + i)]);
  const [fromMean, toMean] = [means.slice(0, space.dim), means.slice(space.dim)];
  requireDirection(toMean.map((v, i) => v - fromMean[i]), NO_AXIS);
  return { from: fromMean, to: toMean };
}

export interface AxisOptions {
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
  const types = checkTypes(options.types);
  const top = checkCount('top', options.top ?? 10, 1000);
  const resamples = options.bootstrap ?? 200;
  if (!Number.isInteger(resamples) || resamples < 0 || resamples > 10000) throw new SpaceError('BAD_OPTION', `bootstrap must be an integer from 0 to 10000, got ${resamples}`);
  const { fromOps, toOps } = axisMembers(space, from, to);
  const dim = space.dim;
  const members = await operandVectors(space, [...toOps, ...fromOps]);
  const nt = toOps.length, nf = fromOps.length;
  // Row 0: the axis; rows 1..: the bootstrap axes, each a resample of both poles.
  const next = seededRandom(options.seed ?? 1);
  const draw = (n: number) => Math.floor(((next() + 1) / 2) * n) % n;
  const indices: number[] = [], weights: number[] = [], offsets = [0];
  for (let b = 0; b <= resamples; b++) {
    for (let i = 0; i < nt; i++) indices.push(b === 0 ? i : draw(nt)), weights.push(1 / nt);
    for (let i = 0; i < nf; i++) indices.push(nt + (b === 0 ? i : draw(nf))), weights.push(-1 / nf);
    offsets.push(indices.length);
  }
  const directions = combine(members, dim, { indices: Int32Array.from(indices), weights: Float32Array.from(weights), offsets: Int32Array.from(offsets) });
  requireDirection(directions.subarray(0, dim), NO_AXIS);
  const hitOf = (scores: Float32Array, row: number, ref: string): AxisHit => {
    const width = resamples + 1;
    const hit: AxisHit = { ref, title: space.title(ref), score: scores[row * width] };
    if (resamples > 0) {
      const boot = Array.from(scores.subarray(row * width + 1, (row + 1) * width)).sort((a, b) => a - b);
      hit.low = boot[Math.floor(0.025 * (boot.length - 1))];
      hit.high = boot[Math.ceil(0.975 * (boot.length - 1))];
    }
    return hit;
  };
  const results: AxisResult['results'] = {}, fromEnd: AxisResult['fromEnd'] = {};
  const scoresOf = new Map<EntityType, Float32Array>();
  const wanted = new Set(options.positions?.map((r) => resolveRef(space, r)) ?? []);
  for (const type of new Set([...types, ...[...wanted].map((r) => space.store.resolve(r).type)])) {
    const set = space.index.vectors(type)!;
    const scores = project(set.matrix, directions, dim);
    scoresOf.set(type, scores);
    if (!types.includes(type)) continue;
    const order = Array.from(set.refs.keys()).sort((a, b) => scores[b * (resamples + 1)] - scores[a * (resamples + 1)]);
    results[type] = order.slice(0, top).map((row) => hitOf(scores, row, set.refs[row]));
    fromEnd[type] = order.slice(-top).reverse().map((row) => hitOf(scores, row, set.refs[row]));
  }
  const positions = [...wanted].map((ref) => {
    const type = space.store.resolve(ref).type;
    return hitOf(scoresOf.get(type)!, space.index.vectors(type)!.refs.indexOf(ref), ref);
  });
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

export interface ShockOptions {
  types?: readonly EntityType[];
  /** Entities listed per type (default 10), ranked by rippled exposure where there is one. */
  top?: number;
}

export interface ShockResult {
  direction: string;
  results: Partial<Record<EntityType, ShockHit[]>>;
  /** Every entity of the chosen types, for files. */
  all: (ShockHit & { type: EntityType })[];
}

const SKILL_WEIGHTS: Record<string, number | 'weight'> = { onet_skill: 'weight', onet_knowledge: 'weight', esco_essential_skill: 1, esco_optional_skill: 0.5 };

function rippleGraph(space: LaborSpace) {
  const edges = (kind: string, weight: number | 'weight', flip: boolean): WeightedEdge[] =>
    space.store.relationsOfKind(kind).map((r) => ({ to: flip ? r.target : r.source, from: flip ? r.source : r.target, weight: weight === 'weight' ? r.weight : weight }));
  return {
    occupationSkills: Object.entries(SKILL_WEIGHTS).flatMap(([kind, w]) => edges(kind, w, false)),
    sectorOccupations: edges('oews_employment', 'weight', false),
    industryParents: edges('naics_parent', 1, false),
    firmIndustries: edges('firm_industry', 'weight', false),
  };
}

/** Direct exposure of every entity to a shock direction, and its ripple along the relations. */
export async function shock(space: LaborSpace, direction: string, options: ShockOptions = {}): Promise<ShockResult> {
  checkTypes(options.types);
  checkCount('top', options.top ?? 10, 100000);
  const { vector } = await expressionVector(space, direction);
  return shockAlong(space, direction, vector, options);
}

/** The shock along a direction vector (space.dim values), named `direction` in the result. */
export function shockAlong(space: LaborSpace, direction: string, vector: Float32Array, options: ShockOptions = {}): ShockResult {
  const types = checkTypes(options.types);
  const top = checkCount('top', options.top ?? 10, 100000);
  const direct = new Map<string, number>();
  for (const type of ENTITY_TYPES) {
    const set = space.index.vectors(type);
    if (!set) continue;
    const scores = project(set.matrix, vector, space.dim);
    set.refs.forEach((ref, i) => direct.set(ref, scores[i]));
  }
  const rippled = ripple(direct, rippleGraph(space));
  const all: ShockResult['all'] = [];
  const results: ShockResult['results'] = {};
  for (const type of types) {
    const hits = space.index.vectors(type)!.refs.map((ref) => {
      const r = rippled.get(ref);
      return { ref, title: space.title(ref), direct: direct.get(ref)!, ...(r === undefined ? {} : { rippled: r }) };
    });
    // Rippled exposure first (entities it reaches, then the rest), direct exposure within ties:
    // industries below the sector level share their sector's rippled value.
    hits.sort((a, b) => (b.rippled ?? -Infinity) - (a.rippled ?? -Infinity) || b.direct - a.direct);
    results[type] = hits.slice(0, top);
    all.push(...hits.map((h) => ({ ...h, type })));
  }
  return { direction, results, all };
}
