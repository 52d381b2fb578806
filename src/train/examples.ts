/**
 * Training and evaluation examples from the stored relations. Each relation kind becomes a set of
 * (anchor, positive) pairs over rows of the pooled-state matrix, trained with the loss its kind
 * suits: multiple-negatives ranking for membership, hierarchy and crosswalk pairs and the
 * strongest weighted ones (O*NET importance, OEWS employment shares past a threshold), CoSENT or
 * cosine MSE for weights where a kind asks, hard negatives for the NAICS hierarchy (a sibling of
 * the parent) as triplets or as MNRL's extra candidates. Anchors are held out whole, seeded: their relations
 * are only seen by evaluation.
 */
import type { LossKind } from '../native.js';
import { parseRef, type Store } from '../store/index.js';
import { randomIndex, seededRandom } from '../util/random.js';


export interface KindConfig {
  loss: LossKind;
  /** Multiplies the kind's loss (its share of the gradient). */
  weight: number;
  /** Relations below this weight are not used (e.g. O*NET's supplemental related occupations). */
  minWeight?: number;
  /**
   * MNRL: each pair also brings a hard negative, a sibling of its positive (another child of the
   * positive's own parent in the kind's hierarchy), as an extra candidate. Triplets always have one.
   */
  siblingNegatives?: boolean;
  /**
   * Read the relation target -> source: anchors (the held-out unit) are then its targets, e.g. the
   * occupations of OEWS sector -> occupation shares (there are only 20 sectors to hold out).
   */
  reverse?: boolean;
}

/** The relation kinds trained by default and how. */
export const DEFAULT_KINDS: Record<string, KindConfig> = {
  // MNRL against every NAICS code with the sibling as a hard negative: held-out MRR 0.576 and
  // sector purity 0.735, against 0.501 and 0.622 as triplets with the sibling alone (README).
  naics_parent: { loss: 'mnrl', weight: 1, siblingNegatives: true },
  esco_essential_skill: { loss: 'mnrl', weight: 1 },
  esco_onet_crosswalk: { loss: 'mnrl', weight: 1 },
  isco_onet_crosswalk: { loss: 'mnrl', weight: 0.5 },
  isco_group: { loss: 'mnrl', weight: 0.5 },
  esco_broader: { loss: 'mnrl', weight: 0.5 },
  onet_related: { loss: 'mnrl', weight: 0.5, minWeight: 0.75 },
  firm_industry: { loss: 'mnrl', weight: 1 },
  // MNRL, not CoSENT on importance: ranking an occupation's own 35 O*NET skills never moved it
  // toward them and away from ESCO's 14k (held-out MRR 0.002); its most important skills as
  // positives against pool negatives do (README).
  onet_skill: { loss: 'mnrl', weight: 1, minWeight: 3.5 },
  oews_employment: { loss: 'mnrl', weight: 1, reverse: true, minWeight: 0.002 },
};

export interface PairSet {
  kind: string;
  loss: LossKind;
  weight: number;
  anchors: Int32Array;
  positives: Int32Array;
  /** Relation weights (CoSENT targets). */
  targets: Float32Array;
  /** Hard negatives (triplets, MNRL with siblingNegatives), -1 where none. */
  negatives: Int32Array;
  /**
   * Rows of every entity of the positives' type: the candidates evaluation ranks them among, and
   * where MNRL's extra negatives are drawn from.
   */
  pool?: Int32Array;
}

export interface Examples {
  train: PairSet[];
  /** Held-out anchors' relations, split in two: one for early stopping, one for the reported numbers. */
  validation: PairSet[];
  test: PairSet[];
}

function pairSet(kind: string, cfg: KindConfig, rows: { a: number; p: number; t: number; n: number }[], pool: Int32Array): PairSet {
  return {
    pool,
    kind,
    loss: cfg.loss,
    weight: cfg.weight,
    anchors: Int32Array.from(rows, (r) => r.a),
    positives: Int32Array.from(rows, (r) => r.p),
    targets: Float32Array.from(rows, (r) => r.t),
    negatives: Int32Array.from(rows, (r) => r.n),
  };
}

/**
 * Pairs per kind over `rowOf` (entity ref -> row). `holdOut` of each kind's anchors (seeded) go
 * to validation and test in equal parts.
 */
export function buildExamples(store: Store, rowOf: Map<string, number>, kinds: Record<string, KindConfig>, holdOut: number, seed: number): Examples {
  const out: Examples = { train: [], validation: [], test: [] };
  const typeOf = (ref: string) => parseRef(ref)!.type;
  const pools = new Map<string, number[]>();
  for (const [ref, row] of rowOf) {
    const rows = pools.get(typeOf(ref));
    if (rows) rows.push(row);
    else pools.set(typeOf(ref), [row]);
  }
  const poolOf = new Map([...pools].map(([type, rows]) => [type, Int32Array.from(rows)]));
  for (const [kind, cfg] of Object.entries(kinds)) {
    const relations = store
      .relationsOfKind(kind)
      .filter((r) => r.weight >= (cfg.minWeight ?? -Infinity) && rowOf.has(r.source) && rowOf.has(r.target))
      .map((r) => (cfg.reverse ? { source: r.target, target: r.source, weight: r.weight } : r));
    if (!relations.length) continue;
    // Hard negatives for the hierarchy: another child of the parent's own parent.
    const parentOf = new Map(relations.map((r) => [r.source, r.target]));
    const childrenOf = new Map<string, string[]>();
    for (const r of relations) childrenOf.set(r.target, [...(childrenOf.get(r.target) ?? []), r.source]);
    const next = seededRandom(seed + kind.length * 7919);
    const negativeFor = (parent: string): number => {
      const grand = parentOf.get(parent);
      const siblings = (grand ? childrenOf.get(grand) ?? [] : []).filter((s) => s !== parent);
      if (!siblings.length) return -1;
      return rowOf.get(siblings[randomIndex(next, siblings.length)])!;
    };
    const maxWeight = Math.max(...relations.map((r) => r.weight));
    const rows = relations.map((r) => ({
      anchor: r.source,
      a: rowOf.get(r.source)!,
      p: rowOf.get(r.target)!,
      t: cfg.loss === 'cosent' || cfg.loss === 'cosine_mse' ? r.weight / maxWeight : r.weight,
      n: cfg.loss === 'triplet' || cfg.siblingNegatives ? negativeFor(r.target) : -1,
    }));
    // Anchors, shuffled with the seed, split train / validation / test.
    const anchors = [...new Set(rows.map((r) => r.anchor))].sort();
    const shuffle = seededRandom(seed + kind.length);
    for (let i = anchors.length - 1; i > 0; i--) {
      const j = Math.floor(((shuffle() + 1) / 2) * (i + 1)) % (i + 1);
      [anchors[i], anchors[j]] = [anchors[j], anchors[i]];
    }
    const held = Math.round(anchors.length * holdOut);
    const part = new Map(anchors.map((a, i) => [a, i < held / 2 ? 'validation' : i < held ? 'test' : 'train'] as const));
    for (const name of ['train', 'validation', 'test'] as const) {
      // Triplets train only where a hard negative exists; evaluation ranks every held-out pair.
      const mine = rows.filter((r) => part.get(r.anchor) === name && (name !== 'train' || cfg.loss !== 'triplet' || r.n >= 0));
      if (mine.length) out[name].push(pairSet(kind, cfg, mine, poolOf.get(typeOf(relations[0].target))!));
    }
  }
  return out;
}
