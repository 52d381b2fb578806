/** Where Labor Space keeps its store, models and indices: --home, else $LABORSPACE_HOME, else the user cache. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LABORSPACE_HOME) return resolve(env.LABORSPACE_HOME);
  const cache = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(cache, 'laborspace');
}
