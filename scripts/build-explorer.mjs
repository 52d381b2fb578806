// Builds the explorer page into dist/explorer: app.ts bundled with its libraries (esbuild, so the
// page needs nothing from the network), index.html and style.css copied. Run by `npm run build`.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'server', 'explorer');
const out = join(root, 'dist', 'explorer');
mkdirSync(out, { recursive: true });
await build({ entryPoints: [join(src, 'app.ts')], bundle: true, format: 'esm', minify: true, target: 'es2022', outfile: join(out, 'app.js'), logLevel: 'warning' });
for (const file of ['index.html', 'style.css']) copyFileSync(join(src, file), join(out, file));
