/**
 * Training checkpoints: the state a trainer needs to go on after an interruption, in one file
 * written atomically (a temporary file renamed over the old one). Layout: the magic line, a
 * little-endian uint32 header length, a JSON header (the run's key, the trainer's scalars, the
 * arrays' lengths and the SHA-256 of the payload), then the float32 arrays end to end. The head
 * trainer saves its head, AdamW moments and best head (headTensors' order); the encoder trainer
 * its parameter arena and moments.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { sha256 } from '../encoder/model-cache.js';
import { makeFolder, writeFileAtomic } from '../util/output-file.js';
import { type HeadParams, headTensors, type TrainState } from './trainer.js';

const MAGIC = 'LSCKPT3\n';

export class CheckpointError extends Error {
  constructor(path: string, why: string) {
    super(`${path}: ${why}`);
    this.name = 'CheckpointError';
  }
}

interface Header<S> {
  key: string;
  scalars: S;
  sizes: number[];
  payloadSha256: string;
}

/** Writes a trainer's scalars and arrays for the run identified by `key` (its data and configuration). */
export function writeCheckpointFile<S>(path: string, key: string, scalars: S, arrays: readonly Float32Array[]): void {
  const payload = Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  const header: Header<S> = { key, scalars, sizes: arrays.map((a) => a.length), payloadSha256: sha256(payload) };
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  makeFolder(dirname(path));
  writeFileAtomic(path, Buffer.concat([Buffer.from(MAGIC), length, json, payload]));
}

/**
 * The scalars and arrays saved for the run `key`; undefined when there is no checkpoint. A file
 * that is not a checkpoint, is damaged or belongs to another run is a CheckpointError.
 */
export function readCheckpointFile<S>(path: string, key: string): { scalars: S; arrays: Float32Array[] } | undefined {
  if (!existsSync(path)) return undefined;
  const file = readFileSync(path);
  if (file.length < MAGIC.length + 4 || file.subarray(0, MAGIC.length).toString() !== MAGIC) throw new CheckpointError(path, 'not a training checkpoint');
  const jsonLength = file.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4 + jsonLength;
  let header: Header<S>;
  try {
    header = JSON.parse(file.subarray(MAGIC.length + 4, start).toString()) as Header<S>;
  } catch {
    throw new CheckpointError(path, 'damaged header');
  }
  if (header.key !== key) throw new CheckpointError(path, 'saved by a run on other data or another configuration');
  const payload = file.subarray(start);
  if (!Array.isArray(header.sizes) || payload.length !== header.sizes.reduce((s, n) => s + 4 * n, 0)) throw new CheckpointError(path, 'truncated');
  if (sha256(payload) !== header.payloadSha256) throw new CheckpointError(path, 'damaged (checksum mismatch)');
  // Copy out of the file buffer: Float32Array views need 4-byte alignment.
  const floats = new Float32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length));
  let offset = 0;
  return { scalars: header.scalars, arrays: header.sizes.map((n) => floats.slice(offset, (offset += n))) };
}

interface HeadScalars {
  step: number;
  stale: number;
  rng: number;
  losses: Record<string, number>;
  best: { step: number; mrr: number };
  dimIn: number;
  dimOut: number;
  /** The adapter's rank; 0: none. */
  rank: number;
}

/** A head from its tensors in headTensors' order. */
function headOf(tensors: Float32Array[], dimIn: number, dimOut: number, rank: number): HeadParams {
  const [weight, bias, down, up] = tensors;
  return { weight, bias, dimIn, dimOut, ...(rank ? { adapter: { rank, down, up } } : {}) };
}

/** Writes the head trainer's `state` for the run `key`. */
export function writeCheckpoint(path: string, key: string, state: TrainState): void {
  const { head, moments, best } = state;
  const scalars: HeadScalars = {
    step: state.step,
    stale: state.stale,
    rng: state.rng,
    losses: state.losses,
    best: { step: best.step, mrr: best.mrr },
    dimIn: head.dimIn,
    dimOut: head.dimOut,
    rank: head.adapter?.rank ?? 0,
  };
  writeCheckpointFile(path, key, scalars, [...headTensors(head), ...moments.m, ...moments.v, ...headTensors(best.head)]);
}

/** The head trainer's state saved for the run `key` (see readCheckpointFile). */
export function readCheckpoint(path: string, key: string): TrainState | undefined {
  const saved = readCheckpointFile<HeadScalars>(path, key);
  if (!saved) return undefined;
  const { scalars: h, arrays } = saved;
  const count = h.rank ? 4 : 2;
  const sizes = [h.dimOut * h.dimIn, h.dimOut, ...(h.rank ? [h.rank * h.dimOut, h.dimOut * h.rank] : [])];
  if (arrays.length !== 4 * count || arrays.some((a, i) => a.length !== sizes[i % count])) throw new CheckpointError(path, 'saved by another kind of training run');
  const [head, m, v, best] = [0, 1, 2, 3].map((part) => arrays.slice(part * count, (part + 1) * count));
  return {
    step: h.step,
    stale: h.stale,
    rng: h.rng,
    losses: h.losses,
    head: headOf(head, h.dimIn, h.dimOut, h.rank),
    moments: { m, v },
    best: { step: h.best.step, mrr: h.best.mrr, head: headOf(best, h.dimIn, h.dimOut, h.rank) },
  };
}
