/**
 * Bulk scoring throughput and memory: `scoreFile` over N synthetic job postings (default 100,000;
 * an occupation title and three skill titles of the space each, seeded) against the pipeline a
 * user would otherwise write: transformers.js (@huggingface/transformers) running the same ONNX
 * encoder and a plain JavaScript scan of every occupation, industry and skill vector, on the first
 * M rows (default 500; it is slow). Reports rows/s of both, their agreement on the nearest
 * occupation, and the peak resident memory of the full run against the input's size.
 * Needs a built space: npx laborspace build (LABORSPACE_HOME or --home).
 * Usage: npm run bench:score [-- --rows 100000 --peer-rows 500 --home DIR]
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Table from 'cli-table3';

import { NAMED_AXES } from '../src/analysis/analyses.js';
import { scoreFile } from '../src/analysis/score.js';
import { defaultHome } from '../src/home.js';
import { LaborSpace } from '../src/space.js';
import { describeMachine, machineLine } from './machine.js';
import { writePostings } from './postings.js';

const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const rows = Number(arg('--rows', '100000'));
const peerRows = Number(arg('--peer-rows', '500'));
const home = arg('--home', defaultHome());

const space = await LaborSpace.open(home);
const work = mkdtempSync(join(tmpdir(), 'laborspace-bench-score-'));
try {
  const input = join(work, 'postings.csv');
  const lines = writePostings(space, input, rows);
  const inputMb = statSync(input).size / 1e6;

  // Ours over every row, sampling the resident memory.
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  const rssBefore = process.memoryUsage().rss;
  const out = join(work, 'postings.scored.jsonl');
  const axes = { 'manufacturing-healthcare': NAMED_AXES['manufacturing-healthcare'] };
  const ours = await scoreFile(space, input, out, { textColumn: 'text', idColumn: 'id', axes, onProgress: (n, rate) => n % 10240 === 0 && process.stderr.write(`ours: ${n} rows, ${Math.round(rate)}/s\n`) });
  clearInterval(sampler);
  const oursTop = readFileSync(out, 'utf8').split('\n', peerRows).map((l) => (JSON.parse(l) as { occupation: { ref: string } }).occupation.ref);

  // The peer on the first rows: transformers.js embeddings, then a JavaScript scan of every vector.
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = '/';
  const modelDir = String(space.store.model(space.modelId)!.extra.dir);
  const tokenizer = await t.AutoTokenizer.from_pretrained(modelDir, { local_files_only: true });
  const model = await t.AutoModel.from_pretrained(modelDir, { local_files_only: true, dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 2 } });
  const texts = lines.slice(1, peerRows + 1).map((l) => l.slice(l.indexOf(',') + 2, -1).replace(/""/g, '"'));
  const sets = (['occupation', 'industry', 'skill'] as const).map((type) => space.index.vectors(type)!);
  const started = process.hrtime.bigint();
  const peerTop: string[] = [];
  for (let i = 0; i < texts.length; i += 32) {
    const out = await model(tokenizer(texts.slice(i, i + 32), { padding: true, truncation: true }));
    const vectors = out.sentence_embedding.data as Float32Array;
    for (let r = 0; r < vectors.length / 512; r++) {
      const v = vectors.subarray(r * 512, (r + 1) * 512);
      let norm = 0;
      for (const x of v) norm += x * x;
      const found = sets.map((set) => {
        const scores: { row: number; score: number }[] = [];
        for (let j = 0; j < set.refs.length; j++) {
          let s = 0;
          for (let p = 0; p < 512; p++) s += v[p] * set.matrix[j * 512 + p];
          scores.push({ row: j, score: s / Math.sqrt(norm) });
        }
        return scores.sort((a, b) => b.score - a.score).slice(0, 5);
      });
      peerTop.push(sets[0].refs[found[0][0].row]);
    }
  }
  const peerSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const agree = peerTop.filter((ref, i) => ref === oursTop[i]).length / peerTop.length;

  const table = new Table({ head: ['bulk scoring', 'rows', 'rows/s', 'peak RSS MB (growth)', 'input MB'] });
  table.push(['laborspace score (stream, batches of 256)', ours.rows, Math.round(ours.rowsPerSecond), `${Math.round(peakRss / 1e6)} (+${Math.round((peakRss - rssBefore) / 1e6)})`, inputMb.toFixed(1)]);
  table.push(['transformers.js + JS scan', peerTop.length, Math.round(peerTop.length / peerSeconds), '', '']);
  console.log(`\nBulk scoring: nearest occupation, industry, 5 skills and one axis per text`);
  console.log(machineLine(describeMachine()));
  console.log(table.toString());
  console.log(`speed-up ${(ours.rowsPerSecond / (peerTop.length / peerSeconds)).toFixed(1)}x; same nearest occupation on ${(100 * agree).toFixed(1)}% of the ${peerTop.length} rows compared`);
} finally {
  await space.close();
  rmSync(work, { recursive: true, force: true });
}
