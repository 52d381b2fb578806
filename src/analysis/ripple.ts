/**
 * How a shock's direct exposure ripples through the labor market's relations (pure: tested on a
 * hand-made graph). With D the direct exposure (cosine with the shock direction):
 *
 *   occupation o:  R(o) = Σ_s w(o,s) D(s) / Σ_s w(o,s)      over its skills; w = O*NET importance
 *                                                           (1-5), ESCO essential 1, optional 0.5
 *   sector i:      R(i) = Σ_o e(i,o) R(o) / Σ_o e(i,o)      over its occupations with an R; e = OEWS
 *                                                           employment share of o in i
 *   industry j:    R(j) = R(sector of j)                    (NAICS below the sector level)
 *   firm f:        R(f) = Σ_j w(f,j) R(j) / Σ_j w(f,j)      over its industries with an R
 *
 * An entity with no relation to carry exposure has no rippled value.
 */

export interface WeightedEdge {
  /** The entity that receives exposure (occupation, sector, firm). */
  to: string;
  /** The entity it comes from (skill, occupation, industry). */
  from: string;
  weight: number;
}

export interface RippleGraph {
  occupationSkills: WeightedEdge[];
  sectorOccupations: WeightedEdge[];
  /** child -> parent links of the NAICS hierarchy (`to` the child, `from` its parent). */
  industryParents: WeightedEdge[];
  firmIndustries: WeightedEdge[];
}

/** Σ w x / Σ w over edges whose source has a value, per receiving entity. */
function weightedMeans(edges: readonly WeightedEdge[], values: ReadonlyMap<string, number>): Map<string, number> {
  const sums = new Map<string, { wx: number; w: number }>();
  for (const e of edges) {
    const x = values.get(e.from);
    if (x === undefined || !(e.weight > 0)) continue;
    const s = sums.get(e.to) ?? { wx: 0, w: 0 };
    s.wx += e.weight * x;
    s.w += e.weight;
    sums.set(e.to, s);
  }
  return new Map([...sums].map(([k, s]) => [k, s.wx / s.w]));
}

/** Rippled exposure of occupations, industries and firms from the direct exposure of skills. */
export function ripple(direct: ReadonlyMap<string, number>, graph: RippleGraph): Map<string, number> {
  const occupations = weightedMeans(graph.occupationSkills, direct);
  const sectors = weightedMeans(graph.sectorOccupations, occupations);
  const parentOf = new Map(graph.industryParents.map((e) => [e.to, e.from]));
  const industries = new Map(sectors);
  const sectorValue = (code: string, seen = 0): number | undefined => {
    if (industries.has(code)) return industries.get(code);
    const parent = parentOf.get(code);
    return parent === undefined || seen > 10 ? undefined : sectorValue(parent, seen + 1);
  };
  for (const child of parentOf.keys()) {
    const v = sectorValue(child);
    if (v !== undefined) industries.set(child, v);
  }
  const firms = weightedMeans(graph.firmIndustries, industries);
  return new Map([...occupations, ...industries, ...firms]);
}
