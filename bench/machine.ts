/** The header every benchmark prints and records: date, CPU, ISA, threads, Node and commit. */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

import { nativeInfo } from '../src/native.js';

export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  isa: string;
  node: string;
  commit: string;
}

export function describeMachine(): Machine {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    isa: nativeInfo().isa,
    node: process.version,
    commit,
  };
}

export function machineLine(m: Machine): string {
  return `${m.date} | ${m.cpu}, ${m.cores} cores | ISA ${m.isa} | Node ${m.node} | commit ${m.commit}`;
}

/**
 * Environment for a PyTorch peer that holds it to the ISA ours runs on: with ours capped to AVX2
 * (LABORSPACE_ISA=avx2 on an AVX-512 machine), OpenBLAS's Haswell kernels and ATen's AVX2 ones, as
 * on an AVX2-only machine.
 */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  if (nativeInfo().isa === 'avx2') Object.assign(env, { OPENBLAS_CORETYPE: 'Haswell', ATEN_CPU_CAPABILITY: 'avx2' });
  return env;
}
