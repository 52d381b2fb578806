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

/** One stage's edges with entities as node numbers. */
interface Edges {
  from: Int32Array;
  to: Int32Array;
  weight: Float64Array;
}

/**
 * A RippleGraph with its entities numbered, built once per open space: a shock then walks ~300k
 * edges over typed arrays in milliseconds instead of looking up strings in Maps.
 */
export interface CompiledRippleGraph {
  /** Node number of each entity named by an edge. */
  nodes: Map<string, number>;
  occupationSkills: Edges;
  sectorOccupations: Edges;
  firmIndustries: Edges;
  /** Parent node of each industry node (-1: none). */
  parent: Int32Array;
  /** Industry nodes with a parent, in the graph's order. */
  children: Int32Array;
}

export function compileRippleGraph(graph: RippleGraph): CompiledRippleGraph {
  const nodes = new Map<string, number>();
  const node = (ref: string) => {
    let n = nodes.get(ref);
    if (n === undefined) nodes.set(ref, (n = nodes.size));
    return n;
  };
  const compile = (edges: readonly WeightedEdge[]): Edges => ({
    from: Int32Array.from(edges, (e) => node(e.from)),
    to: Int32Array.from(edges, (e) => node(e.to)),
    weight: Float64Array.from(edges, (e) => e.weight),
  });
  const occupationSkills = compile(graph.occupationSkills), sectorOccupations = compile(graph.sectorOccupations), firmIndustries = compile(graph.firmIndustries);
  const links = compile(graph.industryParents);
  const parent = new Int32Array(nodes.size).fill(-1);
  const children: number[] = [];
  links.to.forEach((child, i) => {
    if (parent[child] < 0) children.push(child);
    parent[child] = links.from[i];
  });
  return { nodes, occupationSkills, sectorOccupations, firmIndustries, parent, children: Int32Array.from(children) };
}

/** Σ w x / Σ w over edges whose source has a value (NaN: none), per receiving node. */
function weightedMeans(edges: Edges, values: Float64Array): Float64Array {
  const wx = new Float64Array(values.length), w = new Float64Array(values.length);
  for (let e = 0; e < edges.from.length; e++) {
    const x = values[edges.from[e]], weight = edges.weight[e];
    if (Number.isNaN(x) || !(weight > 0)) continue;
    wx[edges.to[e]] += weight * x;
    w[edges.to[e]] += weight;
  }
  return wx.map((sum, n) => (w[n] > 0 ? sum / w[n] : NaN));
}

/**
 * Rippled exposure per node of a compiled graph from the direct exposure per node (NaN where an
 * entity has none); NaN where nothing carries any.
 */
export function rippleNodes(direct: Float64Array, graph: CompiledRippleGraph): Float64Array {
  const occupations = weightedMeans(graph.occupationSkills, direct);
  const industries = weightedMeans(graph.sectorOccupations, occupations);
  for (const child of graph.children) {
    let at = child;
    for (let up = 0; Number.isNaN(industries[at]) && at >= 0 && up < 11; up++) at = graph.parent[at];
    if (at >= 0) industries[child] = industries[at];
  }
  const firms = weightedMeans(graph.firmIndustries, industries);
  // An entity on several levels takes the later one's value, firms last.
  return occupations.map((o, n) => (Number.isNaN(firms[n]) ? (Number.isNaN(industries[n]) ? o : industries[n]) : firms[n]));
}

/** Rippled exposure of occupations, industries and firms from the direct exposure of skills. */
export function ripple(direct: ReadonlyMap<string, number>, graph: RippleGraph): Map<string, number> {
  const compiled = compileRippleGraph(graph);
  const values = new Float64Array(compiled.nodes.size).fill(NaN);
  for (const [ref, n] of compiled.nodes) values[n] = direct.get(ref) ?? NaN;
  const rippled = rippleNodes(values, compiled);
  return new Map([...compiled.nodes].flatMap(([ref, n]) => (Number.isNaN(rippled[n]) ? [] : [[ref, rippled[n]] as [string, number]])));
}
