/** Where Labor Space keeps its store, models and indices: --home, else $LABORSPACE_HOME, else the user cache. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { Store, StoreError } from './store/index.js';
import { makeFolder } from './util/output-file.js';

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
  try {
    makeFolder(home);
  } catch (e) {
    throw new StoreError('NO_STORE', `cannot create the Labor Space home ${home}: ${(e as Error).message}`);
  }
  return Store.open(storePath(home));
}

/** Opens the store of a home that was built: a missing home is an error, never created. */
export function openBuiltHomeStore(home: string, options: { readonly?: boolean } = {}): Store {
  if (!existsSync(storePath(home))) throw new StoreError('NO_STORE', `no Labor Space home at ${home}: run \`laborspace build\``);
  return Store.open(storePath(home), options);
}
