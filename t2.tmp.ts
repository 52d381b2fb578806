import { mkdtempSync } from 'node:fs'; import { tmpdir } from 'node:os'; import { join } from 'node:path';
import { ensureUseLiteModel } from './src/encoder/model-cache.js';
import { SentenceEncoder } from './src/encoder/sentence-encoder.js';
import { loadNativeUseLite, embedTokenLists, packTokens } from './src/encoder/native-use-lite.js';
import { Store } from './src/store/index.js';
import { ingest } from './src/data/ingest.js';
import { seededRandom } from './src/util/random.js';
const store = Store.open(':memory:'); await ingest(store);
const all = store.entities().map((e) => e.text); store.close();
const next = seededRandom(42);
const texts = Array.from({ length: 512 }, () => all[Math.floor(((next() + 1) / 2) * all.length) % all.length]);
const m = ensureUseLiteModel(join(mkdtempSync(join(tmpdir(), 'x-')), 'home'));
const ort = await SentenceEncoder.load(m.dir, { threads: 2 });
const ids = texts.map((t) => ort.tokenize(t));
const { vectors } = await ort.encode(texts);
const nat = loadNativeUseLite();
let t0 = performance.now();
const e = embedTokenLists(nat.encoder, nat.params, ids);
console.log('native embed', (performance.now() - t0).toFixed(0), 'ms for', texts.length, 'tokens', ids.reduce((a, l) => a + Math.min(128, l.length), 0));
t0 = performance.now(); await ort.encode(texts); console.log('ort', (performance.now() - t0).toFixed(0));
let worst = 1;
for (let i = 0; i < texts.length; i++) { let d = 0; for (let j = 0; j < 512; j++) d += vectors[i * 512 + j] * e[i * 512 + j]; worst = Math.min(worst, d); }
console.log('min cosine', worst);
// training step: 64 pairs
const batch = packTokens([...ids.slice(0, 64), ...ids.slice(64, 128)]);
const grad = new Float32Array(nat.encoder.paramCount);
for (let r = 0; r < 4; r++) { t0 = performance.now(); const out = nat.encoder.lossStep('mnrl', nat.params, batch, grad); console.log('step', (performance.now() - t0).toFixed(0), 'ms loss', out.loss.toFixed(4), 'tokens', batch.tokens.length, 'uniq', out.embeddingIds.length); }
for (let r = 0; r < 2; r++) { t0 = performance.now(); nat.encoder.forward(nat.params, batch); console.log('fwd', (performance.now() - t0).toFixed(0)); }
await ort.close();
