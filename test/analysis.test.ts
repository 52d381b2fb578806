import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { axisPoleMeans, NAMED_AXES, splitPoles } from '../src/analysis/analyses.js';
import { ExprError, linearize } from '../src/analysis/expr.js';
import { correlate, ranks } from '../src/analysis/correlation.js';
import { aiExposure, compareExposure } from '../src/analysis/exposure.js';
import { mapSvg, spaceMap } from '../src/analysis/map.js';
import { leadingEigenvectors } from '../src/util/pca.js';
import { formatRows, scoreFile, writeScores } from '../src/analysis/score.js';
import { ripple } from '../src/analysis/ripple.js';
import { build } from '../src/build.js';
import { IngestError } from '../src/data/errors.js';
import { SpaceError } from '../src/errors.js';
import { LaborSpace } from '../src/space.js';
import { assertRejects, beforeAll, randomMatrix, runCli } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');

const Parser = suite('expression parser');

const coefficients = (expr: string) => linearize(expr).terms.map((t) => [t.operand.kind === 'ref' ? t.operand.ref : `"${t.operand.text}"`, +t.coefficient.toFixed(12)]);

Parser('should reduce valid expressions to their linear form', () => {
  assert.equal(coefficients('firm:wiki:apple - industry:naics:3341 + industry:naics:6221'), [['firm:wiki:apple', 1], ['industry:naics:3341', -1], ['industry:naics:6221', 1]]);
  assert.equal(coefficients('0.5*"artificial intelligence" + skill:onet:2.A.1.a'), [['"artificial intelligence"', 0.5], ['skill:onet:2.A.1.a', 1]]);
  assert.equal(coefficients("-(2 * (occupation:onet:29-1141.00 - 'night shifts')) * .5 + 1e-1 * occupation:onet:29-1141.00"), [['occupation:onet:29-1141.00', -0.9], ['"night shifts"', 1]]);
  assert.equal(coefficients('(1 + 2) * industry:naics:31-33 - 3 * industry:naics:62 + industry:naics:62'), [['industry:naics:31-33', 3], ['industry:naics:62', -2]]);
});

Parser('should point at the position of each error', () => {
  const cases: [string, number, RegExp][] = [
    ['occupation:onet:29-1141.00 + * "school"', 29, /unexpected "\*": expected an operand/],
    ['skill:esco:x + "unterminated', 15, /unterminated quoted text/],
    ['skill:esco:x + ""', 15, /empty quoted text/],
    ['2 * 3', 0, /the expression is a number/],
    ['skill:esco:x * skill:esco:y', 13, /cannot multiply two vectors/],
    ['skill:esco:x + 1', 13, /cannot add a number and a vector/],
    ['skill:esco:x + banana', 15, /unexpected "banana": expected a reference/],
    ['(skill:esco:x + skill:esco:y', 28, /expected "\)"/],
    ['skill:esco:x)', 12, /unexpected "\)" after a complete expression/],
    ['skill:esco:x -', 14, /unexpected end of expression/],
    ['skill:esco:x - skill:esco:x', 0, /cancel out/],
    ['   ', 0, /empty expression/],
  ];
  for (const [expr, position, message] of cases) {
    try {
      linearize(expr);
      assert.unreachable(`${expr} should fail`);
    } catch (e) {
      assert.instance(e, ExprError, `${expr}: ${e}`);
      assert.is((e as ExprError).position, position, `${expr}: ${(e as Error).message}`);
      assert.match((e as Error).message, message);
      assert.match((e as Error).message, new RegExp(`\\n  ${' '.repeat(position)}\\^$`), 'a caret under the position');
    }
  }
});

Parser('should split poles on commas outside quotes', () => {
  assert.equal(splitPoles('industry:naics:62, "care, nursing", \'a,b\''), ['industry:naics:62', '"care, nursing"', "'a,b'"]);
  assert.throws(() => splitPoles('"open, ended'), /unterminated quoted text/);
});

Parser.run();

const Ripple = suite('ripple');

Ripple('should carry exposure from skills to occupations, sectors, their industries and firms', () => {
  const direct = new Map([
    ['s1', 1],
    ['s2', 0],
    ['s3', 0.5],
  ]);
  const r = ripple(direct, {
    // o1: importance 3 on s1, 1 on s2 -> 0.75; o2: s3 only -> 0.5; o3: no skills -> none.
    occupationSkills: [
      { to: 'o1', from: 's1', weight: 3 },
      { to: 'o1', from: 's2', weight: 1 },
      { to: 'o2', from: 's3', weight: 2 },
      { to: 'o3', from: 'unknown', weight: 1 },
    ],
    // Sector A: 60% o1, 40% o2 -> 0.65; sector B: o3 only -> none.
    sectorOccupations: [
      { to: 'A', from: 'o1', weight: 0.6 },
      { to: 'A', from: 'o2', weight: 0.4 },
      { to: 'B', from: 'o3', weight: 1 },
    ],
    industryParents: [
      { to: 'A1', from: 'A', weight: 1 },
      { to: 'A11', from: 'A1', weight: 1 },
      { to: 'B1', from: 'B', weight: 1 },
    ],
    // f1: two thirds A11 (0.65), one third B1 (none) -> 0.65; f2: B1 only -> none.
    firmIndustries: [
      { to: 'f1', from: 'A11', weight: 2 },
      { to: 'f1', from: 'B1', weight: 1 },
      { to: 'f2', from: 'B1', weight: 1 },
    ],
  });
  const close = (k: string, v: number) => assert.ok(Math.abs(r.get(k)! - v) < 1e-12, `${k}: ${r.get(k)} vs ${v}`);
  close('o1', 0.75);
  close('o2', 0.5);
  close('A', 0.65);
  close('A1', 0.65);
  close('A11', 0.65);
  close('f1', 0.65);
  for (const none of ['o3', 'B', 'B1', 'f2', 's1']) assert.not.ok(r.has(none), `${none} has no rippled value`);
});

Ripple.run();

const Correlation = suite('correlation');

Correlation('should give Pearson and Spearman on known data, ties ranked by their mean', () => {
  assert.equal(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
  const linear = correlate([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]);
  assert.equal([linear.n, +linear.pearson.toFixed(12), +linear.spearman.toFixed(12)], [5, 1, 1]);
  // Monotone but not linear: Spearman 1, Pearson below it.
  const cubic = correlate([1, 2, 3, 4, 5], [1, 8, 27, 64, 125]);
  assert.is(+cubic.spearman.toFixed(12), 1);
  assert.ok(Math.abs(cubic.pearson - 0.9431175) < 1e-6, `${cubic.pearson}`);
  // x = 1..5 against y = 5,6,7,8,7: ranks 1,2,3.5,5,3.5; Spearman = 0.82078 (by hand).
  assert.ok(Math.abs(correlate([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).spearman - 0.8207827) < 1e-6);
  assert.ok(Number.isNaN(correlate([1, 1, 1], [1, 2, 3]).pearson), 'no variance: undefined');
  assert.throws(() => correlate([1, 2], [1]), /differ in length/);
});

Correlation.run();

const Pca = suite('leading eigenvectors');

Pca('should find the principal axes of a rotated diagonal matrix', () => {
  // C = R diag(5, 2, 1) Rᵀ with R a rotation by 30 degrees in the first two coordinates.
  const [c30, s30] = [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)];
  const r = [c30, -s30, 0, s30, c30, 0, 0, 0, 1];
  const values = [5, 2, 1];
  const c = new Float32Array(9);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) c[i * 3 + j] += r[i * 3 + k] * values[k] * r[j * 3 + k];
  const { vectors, values: found } = leadingEigenvectors(c, 3, 2);
  assert.ok(Math.abs(found[0] - 5) < 1e-4 && Math.abs(found[1] - 2) < 1e-4, `${found}`);
  // Eigenvectors are the columns of R, up to sign.
  assert.ok(Math.abs(Math.abs(vectors[0] * c30 + vectors[1] * s30) - 1) < 1e-4, `${vectors}`);
  assert.ok(Math.abs(Math.abs(-vectors[3] * s30 + vectors[4] * c30) - 1) < 1e-4, `${vectors}`);
});

Pca('should centre the PCA map on the mean, keeping the variance of a space far from the origin', async () => {
  // Every point at 1000 on each axis, spread along e0 (variance 1/3) and e1 (variance 0.03); each
  // (t, s) with its mirror images, so that e0 and e1 are exactly the sample's principal axes.
  const n = 3000, dim = 8;
  const base = randomMatrix(n / 4, 2, 5);
  const t = Float32Array.from({ length: 2 * n }, (_, j) => base[2 * Math.floor(j / 8) + (j % 2)] * ((j % 2 === 0 ? j % 8 < 4 : j % 4 < 2) ? 1 : -1));
  const matrix = Float32Array.from({ length: n * dim }, (_, j) => 1000 + (j % dim === 0 ? t[2 * Math.floor(j / dim)] : j % dim === 1 ? 0.3 * t[2 * Math.floor(j / dim) + 1] : 0));
  const refs = Array.from({ length: n }, (_, i) => `skill:test:${i}`);
  const space = { dim, index: { vectors: (type: string) => (type === 'skill' ? { dim, refs, matrix, entityIds: new Int32Array(n) } : undefined) }, title: () => '' } as unknown as LaborSpace;
  const map = await spaceMap(space, { types: ['skill'], labels: [] });
  const variance = (f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i) ** 2).reduce((a, b) => a + b, 0) / n;
  const [v0, v1] = [variance((i) => t[2 * i]), variance((i) => 0.3 * t[2 * i + 1])];
  assert.ok(Math.abs(map.explained![0] - v0 / (v0 + v1)) < 1e-3 && Math.abs(map.explained![1] - v1 / (v0 + v1)) < 1e-3, `${map.explained} vs ${[v0, v1].map((v) => v / (v0 + v1))}`);
  map.points.forEach((p, i) => {
    assert.ok(Math.abs(Math.abs(p.x) - Math.abs(t[2 * i])) < 1e-3, `point ${i}: x ${p.x} vs ±${t[2 * i]}`);
    assert.ok(Math.abs(Math.abs(p.y) - Math.abs(0.3 * t[2 * i + 1])) < 1e-3, `point ${i}: y ${p.y} vs ±${0.3 * t[2 * i + 1]}`);
  });
});

Pca.run();

const OnSpace = suite('analyses on the fixture space');
let home: string;
let space: LaborSpace;

beforeAll(OnSpace, async () => {
  home = mkdtempSync(join(tmpdir(), 'laborspace-analysis-'));
  await build(home, { dataDir: FIXTURES, threads: 2, train: false });
  space = await LaborSpace.open(home);
});
OnSpace.after(async () => {
  await space?.close();
  rmSync(home, { recursive: true, force: true });
});

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i], 0);
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));

OnSpace('should rank arithmetic results as a plain TypeScript computation does, without the operands', async () => {
  const [nurse, machinist] = ['occupation:onet:29-1141.00', 'occupation:onet:51-4041.00'];
  const expr = `${nurse} - 0.5*${machinist} + 0.3*"hospital ward"`;
  const r = await space.arith(expr, { types: ['occupation'], k: 3 });
  const [text] = [await space.embed(['hospital ward'])];
  const target = space.vectorOf(nurse).map((v, i) => v - 0.5 * space.vectorOf(machinist)[i] + 0.3 * text[i]);
  const set = space.index.vectors('occupation')!;
  const expected = set.refs
    .filter((ref) => ref !== nurse && ref !== machinist)
    .map((ref) => ({ ref, score: cosine(space.vectorOf(ref), target) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, 3);
  assert.equal(r.results.occupation!.map((h) => h.ref), expected.map((h) => h.ref));
  r.results.occupation!.forEach((h, i) => assert.ok(Math.abs(h.score - expected[i].score) < 1e-4));
  await assertRejects(space.arith('occupation:onet:99-9999.00 + "x"'), SpaceError, /no entity occupation:onet:99-9999\.00/);
  await assertRejects(space.arith(expr, { k: 0 }), SpaceError, /k must be an integer from 1/);
});

OnSpace('should score the axis as cos(x, mean(to) - mean(from)), with intervals around the score', async () => {
  const to = ['industry:naics:62'], from = ['"metal machining"', 'industry:naics:31-33'];
  const r = await space.axis(from, to, { types: ['occupation'], top: 2, bootstrap: 50, positions: ['occupation:onet:29-1141.00'] });
  const industries = space.index.vectors('industry')!;
  const members = (lo: number, hi: number) => industries.refs.filter((ref) => +ref.slice(15, 17) >= lo && +ref.slice(15, 17) <= hi);
  const mean = (vs: Float32Array[]) => vs[0].map((_, i) => vs.reduce((s, v) => s + v[i], 0) / vs.length);
  const toMean = mean(members(62, 62).map((ref) => space.vectorOf(ref)));
  const fromMean = mean([await space.embed(['metal machining']), ...members(31, 33).map((ref) => space.vectorOf(ref))]);
  const direction = toMean.map((v, i) => v - fromMean[i]);
  assert.is(r.axis.toMembers, members(62, 62).length);
  assert.is(r.axis.fromMembers, members(31, 33).length + 1);
  const nurse = r.positions[0];
  assert.ok(Math.abs(nurse.score - cosine(space.vectorOf('occupation:onet:29-1141.00'), direction)) < 1e-4, `${nurse.score}`);
  assert.ok(nurse.low! <= nurse.score + 1e-6 && nurse.score <= nurse.high! + 1e-6, JSON.stringify(nurse));
  assert.ok(r.results.occupation![0].score >= r.results.occupation![1].score && r.fromEnd.occupation![0].score <= r.fromEnd.occupation![1].score);
  await assertRejects(space.axis([], to), SpaceError, /at least one pole at each end/);
  await assertRejects(space.axis(from, to, { bootstrap: -1 }), SpaceError, /bootstrap must be an integer from 0/);
});

OnSpace('should report direct exposure as a cosine and ripple it from the skills of each occupation', async () => {
  const r = await space.shock('"reading and writing"', { types: ['occupation', 'skill'], top: 5 });
  const direction = await space.embed(['reading and writing']);
  const at = new Map(r.all.map((h) => [h.ref, h]));
  const nurse = at.get('occupation:onet:29-1141.00')!;
  assert.ok(Math.abs(nurse.direct - cosine(space.vectorOf(nurse.ref), direction)) < 1e-4);
  // The nurse's rippled exposure: importance-weighted mean of its O*NET skills' and knowledge's direct exposure.
  let wx = 0, w = 0;
  for (const rel of [...space.store.relations(nurse.ref, { kind: 'onet_skill', direction: 'out' }), ...space.store.relations(nurse.ref, { kind: 'onet_knowledge', direction: 'out' })]) {
    const skill = at.get(rel.target);
    if (!skill) continue;
    wx += rel.weight * skill.direct;
    w += rel.weight;
  }
  assert.ok(w > 0 && Math.abs(nurse.rippled! - wx / w) < 1e-6, `${nurse.rippled} vs ${wx / w}`);
  assert.is(r.results.occupation!.length, 5);
});

OnSpace('should build the AI direction from ESCO skills, and say so when the space lacks them', async () => {
  // The fixtures hold none of the eight ESCO AI skills: the skill construction cannot be built.
  await assertRejects(aiExposure(space), SpaceError, /the space holds 0 of the 8 ESCO skills the AI direction is built from/);
  await assertRejects(aiExposure(space, { construction: 'words' as 'texts' }), SpaceError, /construction must be skills or texts, got words/);
  const texts = await aiExposure(space, { construction: 'texts', top: 3 });
  assert.is(texts.results.occupation!.length, 3);
});

OnSpace('should compare exposure with a score file by SOC 2010 or NAICS code', async () => {
  const exposure = await aiExposure(space, { construction: 'texts' });
  const socFile = join(home, 'soc.csv');
  // SOC 2010 15-1132 (software developers, applications) is 15-1252 in SOC 2018.
  writeFileSync(socFile, 'soc,score\n29-1141,1.5\n15-1132,3\n51-4041,0.5\n99-9999,2\n');
  const c = await compareExposure(space, exposure, socFile, { key: 'soc', value: 'score' });
  assert.equal([c.kind, c.rows, c.matched, c.unmatched], ['occupation', 4, 3, ['99-9999']]);
  const nurse = c.matches.find((m) => m.code === '29-1141')!;
  assert.equal(nurse.refs.sort(), ['occupation:onet:29-1141.00', 'occupation:onet:29-1141.01']);
  const at = new Map(exposure.all.map((h) => [h.ref, h]));
  assert.ok(Math.abs(nurse.direct - (at.get(nurse.refs[0])!.direct + at.get(nurse.refs[1])!.direct) / 2) < 1e-9, 'the mean over the mapped occupations');
  assert.equal(c.matches.find((m) => m.code === '15-1132')!.refs, ['occupation:onet:15-1252.00']);
  assert.is(c.direct.n, 3);
  const naicsFile = join(home, 'naics.csv');
  writeFileSync(naicsFile, 'naics,score\n6221,2\n3327,-1\n5112,0.5\n62210,1\n9999,0\n');
  const n = await compareExposure(space, exposure, naicsFile, { key: 'naics', value: 'score' });
  assert.equal([n.kind, n.matched, n.unmatched], ['industry', 4, ['9999']]);
  assert.equal(n.matches.find((m) => m.code === '62210')!.refs, ['industry:naics:6221'], 'an OES aggregate code with a trailing zero');
  writeFileSync(socFile, 'soc,score\n29-1141,high\n');
  await assertRejects(compareExposure(space, exposure, socFile, { key: 'soc', value: 'score' }), SpaceError, /soc\.csv:2: "high" is not a score for "29-1141"/);
  await assertRejects(compareExposure(space, exposure, socFile, { key: 'SOC Code', value: 'score' }), SpaceError, /no column "SOC Code" \(columns: soc, score\)/);
  writeFileSync(socFile, 'soc,score\nnurse,1\n');
  await assertRejects(compareExposure(space, exposure, socFile, { key: 'soc', value: 'score' }), SpaceError, /"nurse" is neither a SOC code/);
});

OnSpace('should map the space by PCA as (x - mean) . eigenvector, and by UMAP on a sample', async () => {
  const map = await spaceMap(space, { types: ['occupation', 'industry'], axis: { from: ['industry:naics:31-33'], to: ['industry:naics:62'] }, labels: ['occupation:onet:29-1141.00'] });
  const all = [...space.index.vectors('occupation')!.refs, ...space.index.vectors('industry')!.refs];
  assert.is(map.points.length, all.length);
  assert.ok(map.explained![0] >= map.explained![1] && map.explained![0] + map.explained![1] <= 1);
  // The coordinates against a TypeScript PCA's: the first component's variance is the largest
  // eigenvalue, and coordinates have mean zero.
  const mean = (f: (p: (typeof map.points)[0]) => number) => map.points.reduce((s, p) => s + f(p), 0) / map.points.length;
  assert.ok(Math.abs(mean((p) => p.x)) < 1e-4 && Math.abs(mean((p) => p.y)) < 1e-4);
  const dim = space.dim;
  const vectors = all.map((ref) => space.vectorOf(ref));
  const mu = Array.from({ length: dim }, (_, i) => vectors.reduce((s, v) => s + v[i], 0) / vectors.length);
  const total = vectors.reduce((s, v) => s + v.reduce((t, x, i) => t + (x - mu[i]) ** 2, 0), 0) / vectors.length;
  assert.ok(Math.abs(mean((p) => p.x * p.x) / total - map.explained![0]) < 1e-3, `variance share of PC1 ${mean((p) => p.x * p.x) / total} vs ${map.explained![0]}`);
  assert.equal(map.labels.map((l) => l.ref), ['occupation:onet:29-1141.00']);
  assert.ok(map.axis && Number.isFinite(map.axis.from.x) && Number.isFinite(map.axis.to.y));
  const svg = await mapSvg(map);
  assert.match(svg, /^<svg/);
  assert.match(svg, /Registered Nurses/);
  const umap = await spaceMap(space, { method: 'umap', sample: 40 });
  assert.is(umap.points.length, 40);
  assert.ok(umap.points.every((p) => Number.isFinite(p.x) && Number.isFinite(p.y)));
  await assertRejects(spaceMap(space, { method: 'umap', axis: { from: ['"a"'], to: ['"b"'] } }), SpaceError, /PCA maps only/);
  await assertRejects(spaceMap(space, { method: 'tsne' as 'pca' }), SpaceError, /method must be pca or umap/);
});

OnSpace('should score a CSV and a JSONL file row by row, skipping malformed rows with their line', async () => {
  const input = join(home, 'postings.csv');
  writeFileSync(input, 'id,posting\n1,"Registered nurse, intensive care unit"\n2,"CNC machinist reading blueprints"\n3,\n4,"bad, row",extra\n5,"Software developer writing Python"\n');
  const out = join(home, 'postings.scored.csv');
  const axes = { 'manufacturing-healthcare': NAMED_AXES['manufacturing-healthcare'] };
  const summary = await scoreFile(space, input, out, { textColumn: 'posting', idColumn: 'id', skills: 2, axes, batchSize: 2 });
  assert.is(summary.rows, 3);
  assert.equal(summary.skipped, [{ line: 4, reason: 'empty text' }, { line: 5, reason: 'wrong number of fields (expected 2, got 3)' }]);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.is(lines.length, 4);
  assert.match(lines[0], /^id,occupation_ref,occupation_title,occupation_score,industry_ref,.*skill_2_score,axis_manufacturing-healthcare$/);
  assert.match(lines[1], /^1,occupation:/);
  // The axis position is cos(text, mean(to) - mean(from)), as axis() scores entities.
  const { from, to } = await axisPoleMeans(space, axes['manufacturing-healthcare'].from, axes['manufacturing-healthcare'].to);
  const text = await space.embed(['Registered nurse, intensive care unit']);
  const expected = cosine(text, to.map((v, i) => v - from[i]));
  assert.ok(Math.abs(Number(lines[1].split(',').pop()) - expected) < 1e-4, `${lines[1]} vs ${expected}`);
  const jsonl = join(home, 'postings.jsonl');
  writeFileSync(jsonl, '{"text": "nurse"}\n{not json\n[1, 2]\n\n{"text": "welder"}\n');
  const scored = join(home, 'postings.scored.jsonl');
  const j = await scoreFile(space, jsonl, scored, { textColumn: 'text', skills: 0 });
  assert.is(j.rows, 2);
  assert.equal(j.skipped.map((s) => [s.line, s.reason.replace(/ \(.*/, '')]), [[2, 'not valid JSON'], [3, 'not a JSON object']]);
  const rows = readFileSync(scored, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.map((r) => r.id), ['1', '5']);
  assert.ok(rows.every((r) => r.occupation.ref.startsWith('occupation:') && r.skills.length === 0));
  await assertRejects(scoreFile(space, jsonl, scored, { textColumn: 'text', onError: 'fail' }), SpaceError, /postings\.jsonl:2: not valid JSON/);
  await assertRejects(scoreFile(space, input, out, { textColumn: 'body' }), IngestError, /^postings\.csv:1 \(column body\): no column "body" in the header \(found: id, posting\)$/);
  await assertRejects(scoreFile(space, input, out, { textColumn: 'posting', idColumn: 'key' }), IngestError, /^postings\.csv:1 \(column key\): no column "key" in the header/);
  await assertRejects(scoreFile(space, input, join(home, 'x.txt'), { textColumn: 'posting' }), SpaceError, /must end in \.csv, \.jsonl or \.parquet/);
});

OnSpace('should format scored rows for their output, and refuse rows formatted for another', async () => {
  const options = { skills: 1, axes: {}, batchSize: 1 };
  const row = { id: '7', occupation: { ref: 'occupation:x', title: 'A, "quoted" title', score: 0.5 }, industry: null, skills: [], axes: {} };
  assert.equal(formatRows('csv', options, [row]), { text: '7,occupation:x,"A, ""quoted"" title",0.5,,,,,,\n', count: 1 });
  assert.equal(formatRows('jsonl', options, [row]), { text: `${JSON.stringify(row)}\n`, count: 1 });
  assert.equal(formatRows('parquet', options, [row]), { fields: [['7', 'occupation:x', 'A, "quoted" title', 0.5, null, null, null, null, null, null]] });
  const csv = join(home, 'mismatch.csv'), parquet = join(home, 'mismatch.parquet');
  await assertRejects(writeScores(csv, 'csv', options, (write) => write(formatRows('parquet', options, [row]))), Error, /rows formatted for Parquet given to a csv output/);
  await assertRejects(writeScores(parquet, 'parquet', options, (write) => write(formatRows('jsonl', options, [row]))), Error, /rows formatted as text given to a Parquet output/);
  assert.not.ok(existsSync(csv) || existsSync(parquet), 'nothing written');
});

OnSpace('should refuse an empty input to score, naming the file, and write no output', async () => {
  const cases: [string, string, RegExp][] = [
    ['empty.csv', '', /^empty\.csv: is empty \(expected a header with posting\)$/],
    ['header.csv', 'id,posting\n', /^header\.csv: has a header but no rows it could read$/],
    ['empty.jsonl', '\n  \n', /^empty\.jsonl: is empty \(expected one JSON object per line\)$/],
  ];
  for (const [name, content, message] of cases) {
    const input = join(home, name);
    writeFileSync(input, content);
    const out = join(home, `${name}.scored.csv`);
    await assertRejects(scoreFile(space, input, out, { textColumn: 'posting' }), IngestError, message);
    assert.not.ok(readdirSync(home).some((f) => f.includes(`${name}.scored`)), `no output for ${name}`);
  }
  try {
    await runCli('--home', home, 'score', '--input', join(home, 'empty.csv'), '--text-column', 'posting');
    assert.unreachable('score of an empty file');
  } catch (e) {
    assert.match((e as Error).message, /^empty\.csv: is empty/);
  }
});

OnSpace('should run arith, axis and shock from the command line, with clear errors', async () => {
  const run = (...argv: string[]) => runCli('--home', home, ...argv);
  const axis = JSON.parse(await run('--json', 'axis', 'manufacturing-healthcare', '--types', 'occupation', '--top', '2', '--bootstrap', '20'));
  assert.is(axis.results.occupation.length, 2);
  assert.match(await run('arith', '"nursing" + occupation:onet:29-1141.00', '--types', 'skill', '--k', '2'), /skill:/);
  const out = join(home, 'shock.csv');
  await run('shock', '--direction', '"software"', '--types', 'occupation', '--out', out);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.is(lines[0], 'type,ref,title,direct,rippled');
  assert.is(lines.length - 1, space.index.vectors('occupation')!.refs.length);
  const fails = async (argv: string[], message: RegExp) => {
    try {
      await run(...argv);
      assert.unreachable(argv.join(' '));
    } catch (e) {
      assert.match((e as Error).message, message);
    }
  };
  await fails(['axis', 'left-right'], /unknown axis "left-right"/);
  await fails(['axis', '--from', 'industry:naics:62'], /give a named axis, or both --from and --to/);
  await fails(['axis', 'manufacturing-healthcare', '--to', 'industry:naics:62'], /not both/);
  await fails(['shock', '--direction', '"x"', '--out', join(home, 'shock.txt')], /must end in \.csv or \.json/);
  await fails(['arith', 'skill:esco:x +'], /unexpected end of expression: expected an operand at position 15/);
  await fails(['exposure', 'robots'], /unknown direction "robots"/);
  await fails(['exposure', 'ai', '--compare', out], /--compare needs --key and --value/);
  await fails(['exposure', 'ai', '--soc-vintage', '2000'], /must be 2010 or 2018/);
  const png = join(home, 'map.png');
  const mapped = JSON.parse(await run('--json', 'map', '--types', 'industry', '--out', png, '--axis', 'manufacturing-healthcare'));
  assert.is(mapped.points, space.index.vectors('industry')!.refs.length);
  assert.equal([...readFileSync(png).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
  await fails(['map', '--out', join(home, 'map.gif')], /must end in \.svg, \.png or \.json/);
  await fails(['map', '--from', 'industry:naics:62'], /--from and --to go together/);
  await fails(['map', '--axis', 'up-down'], /unknown axis "up-down"/);
  const posts = join(home, 'cli-posts.csv');
  writeFileSync(posts, 'text\n"nurse on a hospital ward"\n"welding steel frames"\n');
  const scored = JSON.parse(await run('--json', 'score', '--input', posts, '--text-column', 'text'));
  assert.equal([scored.rows, scored.out], [2, join(home, 'cli-posts.scored.csv')]);
  await fails(['score', '--input', posts, '--text-column', 'text', '--axes', 'left-right'], /unknown axis "left-right"/);
  await fails(['score', '--input', join(home, 'none.csv'), '--text-column', 'text'], /no such file/);
  const exposure = JSON.parse(await run('--json', 'exposure', 'ai', '--construction', 'texts', '--types', 'occupation', '--top', '2'));
  await fails(['exposure', 'ai'], /the space holds 0 of the 8 ESCO skills/);
  assert.is(exposure.results.occupation.length, 2);
});

OnSpace('should refuse to score a file into itself, skip a JSONL row without the text key, and write the output whole or not at all', async () => {
  const input = join(home, 'mixed.jsonl');
  const content = '{"text": "nurse on a hospital ward"}\n{"body": "welder"}\n{"text": "baker"}\n';
  writeFileSync(input, content);
  await assertRejects(runCli('--home', home, 'score', '--input', input, '--text-column', 'text', '--out', input), SpaceError, /mixed\.jsonl is the input file: write the scores to another file/);
  assert.is(readFileSync(input, 'utf8'), content, 'the input is intact');
  const scores = join(home, 'outside-scores.csv');
  writeFileSync(scores, 'soc,score\n29-1141,1\n');
  await assertRejects(runCli('--home', home, 'exposure', 'ai', '--compare', scores, '--key', 'soc', '--value', 'score', '--out', scores), Error, /--out .*outside-scores\.csv is the --compare file/);
  assert.is(readFileSync(scores, 'utf8'), 'soc,score\n29-1141,1\n');
  const out = join(home, 'mixed.scored.jsonl');
  const printed = await runCli('--home', home, 'score', '--input', input, '--text-column', 'text', '--out', out, '--axes', 'none', '--on-error', 'skip');
  assert.match(printed, /^2 rows scored to .*mixed\.scored\.jsonl .*\nskipped line 2: no key "text" \(found: body\)$/);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id), ['1', '3']);
  writeFileSync(out, 'previous');
  // The first row is scored and written before the second fails the run.
  await assertRejects(scoreFile(space, input, out, { textColumn: 'text', onError: 'fail', batchSize: 1 }), SpaceError, /mixed\.jsonl:2: no key "text"/);
  assert.is(readFileSync(out, 'utf8'), 'previous', 'a failed run leaves the output as it was');
  assert.equal(readdirSync(home).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind');
  const latin1 = join(home, 'latin1.jsonl');
  writeFileSync(latin1, Buffer.concat([Buffer.from('{"text": "nurse"}\n{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  await assertRejects(scoreFile(space, latin1, join(home, 'latin1.scored.jsonl'), { textColumn: 'text' }), IngestError, /^latin1\.jsonl:2: not valid UTF-8 at byte offset 31/);
});

OnSpace('should refuse an axis whose poles cancel out, as arith refuses a zero expression', async () => {
  const none = /the axis has no direction: mean\(to\) - mean\(from\) is the zero vector \(its poles cancel out\)/;
  await assertRejects(space.axis(['industry:naics:62'], ['industry:naics:62']), SpaceError, none);
  await assertRejects(space.axis(['"welding"', 'occupation:onet:29-1141.00'], ['occupation:onet:29-1141.00', '"welding"']), SpaceError, none, 'BAD_QUERY');
  await assertRejects(axisPoleMeans(space, ['industry:naics:62'], ['industry:naics:62']), SpaceError, none);
  await assertRejects(runCli('--home', home, 'axis', '--from', 'industry:naics:62', '--to', 'industry:naics:62'), SpaceError, none);
});

OnSpace.run();
