/**
 * Reads the weights of a TF.js graph model (model.json + binary shards) by name. The shards hold
 * the manifest's tensors back to back, in manifest order, little-endian.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TfjsTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

interface Manifest {
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string; quantization?: unknown }[] }[];
}

export function readTfjsWeights(dir: string): Map<string, TfjsTensor> {
  const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Manifest;
  const weights = new Map<string, TfjsTensor>();
  for (const group of manifest.weightsManifest) {
    const buffer = Buffer.concat(group.paths.map((p) => readFileSync(join(dir, p))));
    let offset = 0;
    for (const w of group.weights) {
      if (w.quantization) throw new Error(`${w.name}: quantized weights are not supported`);
      if (w.dtype !== 'float32' && w.dtype !== 'int32') throw new Error(`${w.name}: dtype ${w.dtype} is not supported`);
      const count = w.shape.reduce((a, b) => a * b, 1);
      const bytes = buffer.subarray(offset, offset + count * 4);
      if (bytes.length !== count * 4) throw new Error(`${w.name}: the weight shards end early (corrupt or truncated model)`);
      const copy = new Uint8Array(bytes).buffer;
      weights.set(w.name, { shape: w.shape, data: w.dtype === 'float32' ? new Float32Array(copy) : new Int32Array(copy) });
      offset += count * 4;
    }
    if (offset !== buffer.length) throw new Error(`weight shards hold ${buffer.length} bytes, the manifest ${offset}`);
  }
  return weights;
}
