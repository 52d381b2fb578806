/** The header every benchmark prints and records: date, CPU, ISA, threads, Node and commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/** The machine's CPU time so far (all CPUs, /proc/stat's ticks): the total and the hypervisor's steal. */
function cpuTicks(): { total: number; steal: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] };
  } catch {
    return undefined; // not Linux
  }
}

/**
 * Starts a meter of steal time: the share of the CPUs' time the hypervisor gave to other guests
 * from now until the returned function is called (undefined off Linux). On a shared VM a latency
 * tail often follows it: a second with 30% steal stalls every thread at once.
 */
export function stealMeter(): () => number | undefined {
  const start = cpuTicks();
  return () => {
    const end = cpuTicks();
    if (!start || !end || end.total === start.total) return undefined;
    return (100 * (end.steal - start.steal)) / (end.total - start.total);
  };
}

/** A steal share for a table: one decimal, empty where unknown. */
export const stealCell = (percent: number | undefined) => (percent === undefined ? '' : percent.toFixed(1));

/**
 * Exits unless /usr/bin/python3 has PyTorch and its products run on OpenBLAS. Debian's
 * python3-torch installs with the reference BLAS (libblas3) alone when no OpenBLAS is there, and
 * that runs the head step 20-40x slower than OpenBLAS does (seen here): a peer not worth the name.
 */
export function requireTorchOnOpenBlas(): void {
  const install = 'apt-get install python3-torch libopenblas0-openmp';
  const probe = "import torch; torch.ones(64, 64) @ torch.ones(64, 64); print('openblas' if 'openblas' in open('/proc/self/maps').read() else 'other')";
  let blas = '';
  try {
    blas = execFileSync('/usr/bin/python3', ['-c', probe], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    console.error(`PyTorch is not installed for /usr/bin/python3: ${install}`);
    process.exit(1);
  }
  if (blas !== 'openblas') {
    console.error(`PyTorch here runs its products on another BLAS than OpenBLAS (the reference one?): ${install}`);
    process.exit(1);
  }
}

/** One configuration of the PyTorch peer: which kernels its OpenBLAS (and ATen) may use. */
export interface PeerConfig {
  label: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The configurations the PyTorch peer runs in, each case keeping its fastest. OpenBLAS picks its
 * kernels by CPU, and on the VMs here its AVX-512 ones (SkylakeX) measured 3-4x slower than its
 * AVX2 ones (Haswell): on AVX-512 both run, so the peer is measured at its best. With ours capped to
 * AVX2 (LABORSPACE_ISA=avx2), only the AVX2 ones, ATen's included, as on an AVX2-only machine.
 */
export function peerConfigs(threads: number): PeerConfig[] {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  const haswell = { label: 'OpenBLAS Haswell (AVX2)', env: { ...env, OPENBLAS_CORETYPE: 'Haswell' } };
  if (nativeInfo().isa === 'avx2') return [{ ...haswell, env: { ...haswell.env, ATEN_CPU_CAPABILITY: 'avx2' } }];
  return [{ label: "OpenBLAS's own choice", env }, haswell];
}
