/**
 * The space's errors and the checks of options that the library, the CLI and the server share,
 * in a module of their own: the analyses need them without importing the space that imports them.
 */
import { ENTITY_TYPES, type EntityType, isEntityType } from './store/index.js';

export class SpaceError extends Error {
  /** UNKNOWN_ENTITY: a reference names no stored entity (the server's 404). */
  readonly code: 'NOT_BUILT' | 'BAD_QUERY' | 'BAD_OPTION' | 'UNKNOWN_ENTITY';
  constructor(code: SpaceError['code'], message: string) {
    super(message);
    this.name = 'SpaceError';
    this.code = code;
  }
}

/**
 * Entity types given as a list or as comma-separated text (a command-line or query-string value),
 * checked: every one known, and text that names none is an error (a list may be empty: an axis
 * asked only for its `positions`). Undefined stays undefined (the caller's default). The message
 * starts with `field` when one is given (the server names the field of the request).
 */
export function checkTypes(types: string | readonly string[] | undefined, field?: string): readonly EntityType[] | undefined {
  if (types === undefined) return undefined;
  const list = typeof types === 'string' ? types.split(',').map((t) => t.trim()).filter(Boolean) : types;
  const fail = (problem: string) => new SpaceError('BAD_OPTION', `${field ? `${field}: ` : ''}${problem} (expected a list of ${ENTITY_TYPES.join(', ')})`);
  const unknown = list.find((t) => !isEntityType(t));
  if (unknown !== undefined) throw fail(`unknown type "${unknown}"`);
  if (!list.length && typeof types === 'string') throw fail('no types given');
  return list as readonly EntityType[];
}

/** A count option (`k`, `top`): an integer from 1 to `max`. */
export function checkCount(name: string, n: number, max: number): number {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new SpaceError('BAD_OPTION', `${name} must be an integer from 1 to ${max}, got ${n}`);
  return n;
}
