export * from './refs.js';
export * from './store.js';
