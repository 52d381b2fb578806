/**
 * What a load did: rows skipped and why (with file, line and column), and relation endpoints
 * that name no known entity, counted per relation kind with a few examples. Nothing is dropped
 * without being counted here.
 */
import { formatLocation, type RowLocation } from './errors.js';

/** Longest reason kept: a reason may quote the row, and a broken file has millions of them. */
const MAX_REASON = 200;

export interface Skipped extends RowLocation {
  reason: string;
}

export class IngestReport {
  readonly skipped: Skipped[] = [];
  /** kind -> count of relations dropped because an endpoint is unknown, and some examples. */
  readonly unknown = new Map<string, { count: number; examples: string[] }>();
  /** Free-form notes per source, e.g. coverage of firm -> industry matching. */
  readonly notes: string[] = [];

  skip(location: RowLocation, reason: string): void {
    this.skipped.push({ ...location, reason: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 3)}...` : reason });
  }

  unknownEndpoint(kind: string, ref: string): void {
    const entry = this.unknown.get(kind) ?? { count: 0, examples: [] };
    entry.count++;
    if (entry.examples.length < 3 && !entry.examples.includes(ref)) entry.examples.push(ref);
    this.unknown.set(kind, entry);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  /** Skipped rows grouped by file and reason, most frequent first. */
  skippedSummary(): { file: string; reason: string; count: number; first: string }[] {
    const groups = new Map<string, { file: string; reason: string; count: number; first: string }>();
    for (const s of this.skipped) {
      const key = `${s.file}\u0000${s.reason}`;
      const g = groups.get(key) ?? { file: s.file, reason: s.reason, count: 0, first: formatLocation(s) };
      g.count++;
      groups.set(key, g);
    }
    return [...groups.values()].sort((a, b) => b.count - a.count);
  }
}
