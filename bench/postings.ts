/** Synthetic job postings for the scoring benchmarks: an occupation title and three skill titles of the space each, seeded. */
import { writeFileSync } from 'node:fs';

import type { LaborSpace } from '../src/space.js';
import { randomIndex, seededRandom } from '../src/util/random.js';

/** Writes `rows` postings to `path` as CSV (columns id, text) and returns the lines, header first. */
export function writePostings(space: LaborSpace, path: string, rows: number): string[] {
  const occupations = space.index.vectors('occupation')!.refs.map((r) => space.title(r));
  const skills = space.index.vectors('skill')!.refs.map((r) => space.title(r));
  const next = seededRandom(7);
  const pick = (list: string[]) => list[randomIndex(next, list.length)];
  const lines = ['id,text'];
  for (let i = 0; i < rows; i++) lines.push(`${i},"${`${pick(occupations)}: ${pick(skills)}, ${pick(skills)}, ${pick(skills)}`.replace(/"/g, '""')}"`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return lines;
}
