/**
 * Training checkpoints: the state trainHead needs to go on after an interruption, in one file
 * written atomically (a temporary file renamed over the old one). Layout: the magic line, a
 * little-endian uint32 header length, a JSON header (scalars, dimensions, the run's key and the
 * SHA-256 of the payload), then the float32 arrays of the head, the AdamW moments and the best head,
 * each in headTensors' order (weight, bias, and the adapter's down and up when it has one).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { sha256 } from '../encoder/model-cache.js';
import { type HeadParams, headTensors, type TrainState } from './trainer.js';

const MAGIC = 'LSCKPT2\n';

export class CheckpointError extends Error {
  constructor(path: string, why: string) {
    super(`${path}: ${why}`);
    this.name = 'CheckpointError';
  }
}

interface Header {
  key: string;
  step: number;
  stale: number;
  rng: number;
  losses: Record<string, number>;
  best: { step: number; mrr: number };
  dimIn: number;
  dimOut: number;
  /** The adapter's rank; 0: none. */
  rank: number;
  payloadSha256: string;
}

function arraysOf(state: TrainState): Float32Array[] {
  const { head, moments, best } = state;
  return [...headTensors(head), ...moments.m, ...moments.v, ...headTensors(best.head)];
}

/** A head from its tensors in headTensors' order. */
function headOf(tensors: Float32Array[], dimIn: number, dimOut: number, rank: number): HeadParams {
  const [weight, bias, down, up] = tensors;
  return { weight, bias, dimIn, dimOut, ...(rank ? { adapter: { rank, down, up } } : {}) };
}

/** Writes `state` for the run identified by `key` (its data and configuration). */
export function writeCheckpoint(path: string, key: string, state: TrainState): void {
  const arrays = arraysOf(state);
  const payload = Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  const header: Header = {
    key,
    step: state.step,
    stale: state.stale,
    rng: state.rng,
    losses: state.losses,
    best: { step: state.best.step, mrr: state.best.mrr },
    dimIn: state.head.dimIn,
    dimOut: state.head.dimOut,
    rank: state.head.adapter?.rank ?? 0,
    payloadSha256: sha256(payload),
  };
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(MAGIC), length, json, payload]));
  renameSync(tmp, path);
}

/**
 * The state saved for the run `key`; undefined when there is no checkpoint. A file that is not a
 * checkpoint, is damaged or belongs to another run is a CheckpointError.
 */
export function readCheckpoint(path: string, key: string): TrainState | undefined {
  if (!existsSync(path)) return undefined;
  const file = readFileSync(path);
  if (file.length < MAGIC.length + 4 || file.subarray(0, MAGIC.length).toString() !== MAGIC) throw new CheckpointError(path, 'not a training checkpoint');
  const jsonLength = file.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4 + jsonLength;
  let header: Header;
  try {
    header = JSON.parse(file.subarray(MAGIC.length + 4, start).toString()) as Header;
  } catch {
    throw new CheckpointError(path, 'damaged header');
  }
  if (header.key !== key) throw new CheckpointError(path, 'saved by a run on other data or another configuration');
  const { dimIn, dimOut, rank } = header;
  const tensorSizes = [dimOut * dimIn, dimOut, ...(rank ? [rank * dimOut, dimOut * rank] : [])];
  const sizes = [...tensorSizes, ...tensorSizes, ...tensorSizes, ...tensorSizes];
  const payload = file.subarray(start);
  if (payload.length !== sizes.reduce((s, n) => s + 4 * n, 0)) throw new CheckpointError(path, 'truncated');
  if (sha256(payload) !== header.payloadSha256) throw new CheckpointError(path, 'damaged (checksum mismatch)');
  // Copy out of the file buffer: Float32Array views need 4-byte alignment.
  const floats = new Float32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length));
  let offset = 0;
  const arrays = sizes.map((n) => floats.slice(offset, (offset += n)));
  const count = tensorSizes.length;
  const [head, m, v, best] = [0, 1, 2, 3].map((part) => arrays.slice(part * count, (part + 1) * count));
  return {
    step: header.step,
    stale: header.stale,
    rng: header.rng,
    losses: header.losses,
    head: headOf(head, dimIn, dimOut, rank),
    moments: { m, v },
    best: { step: header.best.step, mrr: header.best.mrr, head: headOf(best, dimIn, dimOut, rank) },
  };
}
