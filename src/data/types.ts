import type { EntityInput, RelationInput } from '../store/index.js';

/** What a loader produces; ingest checks every relation endpoint before anything is written. */
export interface Loaded {
  entities: EntityInput[];
  relations: RelationInput[];
}

export function emptyLoaded(): Loaded {
  return { entities: [], relations: [] };
}

/** Collapses runs of spaces and tabs and of blank lines, and trims. */
export function cleanText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t\u00a0]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** "Title. Description", without doubling the title when the description starts with it. */
export function titledText(title: string, description: string): string {
  const d = cleanText(description);
  if (!d) return title;
  return d.toLowerCase().startsWith(title.toLowerCase()) ? d : `${title}. ${d}`;
}
