/** `laborspace ingest`: progress while loading, then the summary as tables or JSON. */
import type { Command } from 'commander';

import { type FirmFile, ingest, type IngestSummary } from '../../data/ingest.js';
import type { Store } from '../../store/index.js';
import { type Cli, print } from '../context.js';
import { checkFirms, type IngestFlags, ingestOptions } from '../options.js';
import { progress } from '../progress.js';
import { newTable } from '../table.js';

export function registerIngest(program: Command, cli: Cli): void {
  ingestOptions(program.command('ingest').description('load NAICS, O*NET, ESCO, firms and crosswalks into the store')).action(async (opts: IngestFlags) => {
    const { json } = cli.globals();
    checkFirms(opts);
    await cli.withStore(async (store) => {
      const summary = await runIngest(store, opts, json);
      print(json, summary, () => formatIngestSummary(summary));
    }, { create: true });
  });
}

/** The --firms, --firm-columns and --firm-source options as ingest's firm files. */
export function firmFilesOf(options: Pick<IngestFlags, 'firms' | 'firmColumns' | 'firmSource'>): FirmFile[] {
  return options.firms ? [{ path: options.firms, columns: options.firmColumns!, source: options.firmSource }] : [];
}

async function runIngest(store: Store, options: IngestFlags, json: boolean | undefined): Promise<IngestSummary> {
  const bar = progress('ingest', json);
  const firmFiles = firmFilesOf(options);
  try {
    return await ingest(store, {
      dataDir: options.data,
      onError: options.onError,
      firmFiles,
      naics2022Dir: options.naics2022,
      onStep: (step, index, total) => bar.update(index, total, step),
    });
  } finally {
    bar.stop();
  }
}

/** Groups of skipped rows printed as a table (the JSON summary holds more). */
const SHOWN_SKIP_GROUPS = 20;

export function formatIngestSummary(s: IngestSummary): string {
  const out: string[] = [];
  const entities = newTable(['type', 'source', 'entities']);
  for (const e of s.entities) entities.push([e.type, e.source, e.count.toLocaleString('en-US')]);
  out.push(`Ingested ${s.dataDir} in ${s.seconds.toFixed(1)} s: ${s.written.inserted} new, ${s.written.updated} changed, ${s.written.unchanged} unchanged entities; ${s.relationsWritten.toLocaleString('en-US')} relations.`);
  out.push(entities.toString());
  const relations = newTable(['relation kind', 'relations']);
  for (const r of s.relations) relations.push([r.kind, r.count.toLocaleString('en-US')]);
  out.push(relations.toString());
  if (s.skipped.length) {
    const skipped = newTable(['file', 'rows skipped', 'why', 'first at']);
    for (const k of s.skipped.slice(0, SHOWN_SKIP_GROUPS)) skipped.push([k.file, k.count, k.reason, k.first]);
    out.push(skipped.toString());
    const rest = s.skipped.slice(SHOWN_SKIP_GROUPS);
    const groups = rest.length + (s.skippedOmitted?.groups ?? 0);
    const rows = rest.reduce((n, g) => n + g.count, 0) + (s.skippedOmitted?.rows ?? 0);
    if (groups) out.push(`... and ${groups.toLocaleString('en-US')} more kinds of skipped rows (${rows.toLocaleString('en-US')} rows)`);
  }
  if (s.unknown.length) {
    const unknown = newTable(['relation kind', 'dropped: unknown endpoint', 'e.g.']);
    for (const u of s.unknown) unknown.push([u.kind, u.count, u.examples.join('\n')]);
    out.push(unknown.toString());
  }
  out.push(...s.notes);
  return out.join('\n');
}
