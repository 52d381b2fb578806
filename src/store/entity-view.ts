/** An entity with its relations grouped by kind and direction: what `show` and `GET /v1/entities/{ref}` return. */
import type { Entity, Relation, Store } from './store.js';

export interface ShowResult {
  entity: Entity;
  relations: { kind: string; direction: 'out' | 'in'; total: number; shown: Relation[] }[];
}

export function showEntity(store: Store, ref: string, limit: number): ShowResult {
  const entity = store.resolve(ref);
  const groups = new Map<string, { kind: string; direction: 'out' | 'in'; total: number; shown: Relation[] }>();
  for (const r of store.relations(entity.ref)) {
    const direction = r.source === entity.ref ? 'out' : 'in';
    const key = `${direction} ${r.kind}`;
    const g = groups.get(key) ?? { kind: r.kind, direction, total: 0, shown: [] };
    g.total++;
    if (g.shown.length < limit) g.shown.push(r);
    groups.set(key, g);
  }
  return { entity, relations: [...groups.values()] };
}

