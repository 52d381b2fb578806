/**
 * Exports a model's vectors for other tools. Formats (kept stable: others read them):
 * - jsonl: one entity per line, exactly {"ref", "type", "title", "vector": [numbers]};
 * - projector: vectors.tsv (one tab-separated vector per line) and metadata.tsv (header
 *   "ref<TAB>type<TAB>title", one line per vector), for the TensorFlow Embedding Projector.
 */
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { once } from 'node:events';

import { makeFolder, writeStreamAtomic } from '../util/output-file.js';
import { ENTITY_TYPES, type EntityType } from './refs.js';
import type { Store } from './store.js';

export type ExportFormat = 'jsonl' | 'projector';

/** Writes a line, waiting when the stream asks to. */
async function writeLine(out: Writable, line: string): Promise<void> {
  if (!out.write(`${line}\n`)) await once(out, 'drain');
}

const clean = (text: string) => text.replace(/[\t\r\n]+/g, ' ');

export async function exportVectors(
  store: Store,
  modelId: string,
  options: { format: ExportFormat; types?: readonly EntityType[]; out?: string; stdout?: Writable },
): Promise<{ count: number; files: string[] }> {
  const types = options.types ?? ENTITY_TYPES;
  const titles = new Map(store.entities().map((e) => [e.ref, e.title]));
  let count = 0;
  if (options.format === 'jsonl') {
    const writeJsonl = async (out: Writable) => {
      for (const type of types) {
        const set = store.vectors(modelId, { type });
        for (let i = 0; i < set.refs.length; i++, count++) {
          const vector = Array.from(set.matrix.subarray(i * set.dim, (i + 1) * set.dim));
          await writeLine(out, JSON.stringify({ ref: set.refs[i], type, title: titles.get(set.refs[i]), vector }));
        }
      }
    };
    if (!options.out) {
      await writeJsonl(options.stdout ?? process.stdout);
      return { count, files: [] };
    }
    await writeStreamAtomic(options.out, writeJsonl);
    return { count, files: [options.out] };
  }
  const dir = options.out ?? 'projector';
  makeFolder(dir);
  // Each file is renamed into place once complete.
  await writeStreamAtomic(join(dir, 'vectors.tsv'), (vectors) =>
    writeStreamAtomic(join(dir, 'metadata.tsv'), async (metadata) => {
      await writeLine(metadata, 'ref\ttype\ttitle');
      for (const type of types) {
        const set = store.vectors(modelId, { type });
        for (let i = 0; i < set.refs.length; i++, count++) {
          await writeLine(vectors, Array.from(set.matrix.subarray(i * set.dim, (i + 1) * set.dim)).join('\t'));
          await writeLine(metadata, `${set.refs[i]}\t${type}\t${clean(titles.get(set.refs[i]) ?? '')}`);
        }
      }
    }),
  );
  return { count, files: [join(dir, 'vectors.tsv'), join(dir, 'metadata.tsv')] };
}
