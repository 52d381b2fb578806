/**
 * Evaluation of a space (one unit vector per entity row): per relation kind, MRR and recall@10 of
 * held-out relations (each held-out anchor ranks every entity of its targets' type, itself left
 * out); type clustering (share of an entity's 10 nearest neighbours of its own type); NAICS sector
 * purity (share of an industry's 10 nearest industries in its own sector).
 */
import { naicsSector } from '../data/naics.js';
import { similarity, topk } from '../native.js';
import { parseRef } from '../store/index.js';
import { randomIndex, seededRandom } from '../util/random.js';
import { gatherRows } from '../util/rows.js';
import type { PairSet } from './examples.js';

export interface KindMetrics {
  kind: string;
  anchors: number;
  mrr: number;
  recallAt10: number;
}

export interface SpaceMetrics {
  kinds: KindMetrics[];
  typeClustering: number;
  sectorPurity: number;
}

const MAX_ANCHORS = 400;
const SAMPLE = 1000;

export function evaluateSpace(embeddings: Float32Array, dim: number, refs: readonly string[], sets: readonly PairSet[], seed = 1): SpaceMetrics {
  const types = refs.map((r) => parseRef(r)!.type);
  const rowsOfType = new Map<string, number[]>();
  types.forEach((t, i) => {
    const rows = rowsOfType.get(t);
    if (rows) rows.push(i);
    else rowsOfType.set(t, [i]);
  });
  const matrixOf = new Map<string, Float32Array>();
  const matrix = (type: string) => {
    if (!matrixOf.has(type)) {
      const rows = rowsOfType.get(type)!;
      matrixOf.set(type, gatherRows(embeddings, dim, rows));
    }
    return matrixOf.get(type)!;
  };

  const kinds: KindMetrics[] = [];
  for (const set of sets) {
    const targets = new Map<number, Set<number>>();
    set.anchors.forEach((a, i) => targets.set(a, (targets.get(a) ?? new Set()).add(set.positives[i])));
    const anchors = [...targets.keys()].slice(0, MAX_ANCHORS);
    const type = types[set.positives[0]];
    const candidates = rowsOfType.get(type)!;
    const position = new Map(candidates.map((r, i) => [r, i]));
    const queries = gatherRows(embeddings, dim, anchors);
    const scores = similarity(queries, matrix(type), dim, 'dot');
    let mrr = 0;
    let recall = 0;
    let ranked = 0;
    anchors.forEach((anchor, i) => {
      const row = scores.subarray(i * candidates.length, (i + 1) * candidates.length);
      const self = position.get(anchor);
      const truth = [...targets.get(anchor)!].map((t) => position.get(t)!).filter((t) => t !== undefined && t !== self);
      if (!truth.length) return;
      const best = Math.max(...truth.map((t) => row[t]));
      const truthSet = new Set(truth);
      let rank = 1;
      const top: number[] = []; // the 10 best candidates, by score, then by index
      for (let j = 0; j < row.length; j++) {
        if (j === self) continue;
        if (!truthSet.has(j) && row[j] > best) rank++;
        if (top.length === 10) {
          if (row[j] <= row[top[9]]) continue;
          top.pop();
        }
        let at = top.length;
        while (at > 0 && row[top[at - 1]] < row[j]) at--;
        top.splice(at, 0, j);
      }
      mrr += 1 / rank;
      ranked++;
      recall += top.filter((j) => truthSet.has(j)).length / Math.min(10, truth.length);
    });
    if (ranked) kinds.push({ kind: set.kind, anchors: ranked, mrr: mrr / ranked, recallAt10: recall / ranked });
  }

  // Type clustering and sector purity on seeded samples.
  const next = seededRandom(seed);
  const sample = Array.from({ length: Math.min(SAMPLE, refs.length) }, () => randomIndex(next, refs.length));
  const sampleVectors = gatherRows(embeddings, dim, sample);
  const near = topk(sampleVectors, embeddings, dim, { k: 11, metric: 'dot' });
  let same = 0;
  let total = 0;
  sample.forEach((r, i) => {
    for (const j of near.indices.subarray(i * near.k, (i + 1) * near.k)) {
      if (j === r) continue;
      same += types[j] === types[r] ? 1 : 0;
      total++;
    }
  });
  const industries = (rowsOfType.get('industry') ?? []).filter((r) => /^\d{6}$/.test(parseRef(refs[r])!.code));
  const sector = (r: number) => naicsSector(parseRef(refs[r])!.code); // 31-33, 44-45 and 48-49 are one sector each
  let pure = 0;
  let count = 0;
  if (industries.length > 10) {
    const m = gatherRows(embeddings, dim, industries);
    const nn = topk(m, m, dim, { k: 11, metric: 'dot' });
    industries.forEach((r, i) => {
      for (const j of nn.indices.subarray(i * nn.k, (i + 1) * nn.k)) {
        if (j === i) continue;
        pure += sector(industries[j]) === sector(r) ? 1 : 0;
        count++;
      }
    });
  }
  return { kinds, typeClustering: same / total, sectorPurity: count ? pure / count : NaN };
}
