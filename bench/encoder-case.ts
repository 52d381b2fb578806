/**
 * One encoder of bench/encoder.ts in its own process: embeds the texts in WORK/texts.json with the
 * model in MODEL_DIR, writes the vectors to WORK/<case>.f32 and the time to WORK/<case>.json.
 * Usage: node --import tsx bench/encoder-case.ts laborspace|laborspace-int8|transformers MODEL_DIR WORK THREADS BATCH
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';

const [name, modelDir, work, threadsArg, batchArg] = process.argv.slice(2);
const threads = Number(threadsArg);
const batch = Number(batchArg);
const texts = JSON.parse(readFileSync(join(work, 'texts.json'), 'utf8')) as string[];
let vectors: Float32Array;
let seconds: number;

if (name === 'laborspace' || name === 'laborspace-int8') {
  const encoder = await SentenceEncoder.load(modelDir, { threads, batchSize: batch, quantized: name === 'laborspace-int8' });
  await encoder.encode(texts.slice(0, 64)); // warm-up
  const t0 = process.hrtime.bigint();
  vectors = (await encoder.encode(texts)).vectors;
  seconds = Number(process.hrtime.bigint() - t0) / 1e9;
} else if (name === 'transformers') {
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = '/';
  const tokenizer = await t.AutoTokenizer.from_pretrained(modelDir, { local_files_only: true });
  const model = await t.AutoModel.from_pretrained(modelDir, { local_files_only: true, dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: threads } });
  const embed = async (part: string[]) => {
    const out = await model(tokenizer(part, { padding: true, truncation: true }));
    return out.sentence_embedding.data as Float32Array;
  };
  await embed(texts.slice(0, 64)); // warm-up
  vectors = new Float32Array(texts.length * 512);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < texts.length; i += batch) vectors.set(await embed(texts.slice(i, i + batch)), i * 512);
  seconds = Number(process.hrtime.bigint() - t0) / 1e9;
} else {
  throw new Error(`unknown case ${name}`);
}
writeFileSync(join(work, `${name}.f32`), new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength));
writeFileSync(join(work, `${name}.json`), JSON.stringify({ seconds }));
