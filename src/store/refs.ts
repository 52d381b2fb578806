/** Entity references: `TYPE:SOURCE:CODE` (DESIGN.md section 8). */
export const ENTITY_TYPES = ['industry', 'occupation', 'skill', 'firm'] as const;
export type EntityType = (typeof ENTITY_TYPES)[number];

export interface EntityKey {
  type: EntityType;
  source: string;
  code: string;
}

export function isEntityType(value: string): value is EntityType {
  return (ENTITY_TYPES as readonly string[]).includes(value);
}

export function formatRef(key: EntityKey): string {
  return `${key.type}:${key.source}:${key.code}`;
}

/**
 * Parses a full reference. The code may itself contain ':' (everything after the second ':' is
 * the code). Returns undefined for anything else; short forms (`TYPE:CODE`) are resolved
 * against the store, not here.
 */
export function parseRef(ref: string): EntityKey | undefined {
  const first = ref.indexOf(':');
  const second = ref.indexOf(':', first + 1);
  if (first < 0 || second < 0) return undefined;
  const type = ref.slice(0, first);
  const source = ref.slice(first + 1, second);
  const code = ref.slice(second + 1);
  if (!isEntityType(type) || !source || !code) return undefined;
  return { type, source, code };
}
