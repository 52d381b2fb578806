#!/usr/bin/env node
// Entry point of the `laborspace` command; the code lives in dist/ (built from src/ by `npm run build`).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((err) => {
  console.error(`laborspace: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
