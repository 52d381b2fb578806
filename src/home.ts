/** Where Labor Space keeps its store, models and indices: --home, else $LABORSPACE_HOME, else the user cache. */
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { Store } from './store/index.js';

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LABORSPACE_HOME) return resolve(env.LABORSPACE_HOME);
  const cache = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(cache, 'laborspace');
}

/** The store file inside a home folder. */
export function storePath(home: string): string {
  return join(home, 'space.db');
}

/** Opens (creating the folder and store if needed) the store of a home folder. */
export function openHomeStore(home: string): Store {
  mkdirSync(home, { recursive: true });
  return Store.open(storePath(home));
}
