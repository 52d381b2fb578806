/** Labor Space: the public TypeScript API. */
export * from './native.js';
export * from './store/index.js';
export { defaultHome } from './home.js';
export { VERSION } from './version.js';
