/**
 * `laborspace eval`: the held-out metrics of the last finished training run, recomputed from the
 * store's base and fine-tuned vectors on its current relations, held out as that run held them out
 * (its kinds, hold-out share and seed). On unchanged data the tuned figures equal the run's.
 */
import { BASE_MODEL_ID, TUNED_MODEL_ID } from '../active-model.js';
import type { Run, Store, VectorSet } from '../store/index.js';
import { gatherRows } from '../util/rows.js';
import { evaluateSpace, type SpaceMetrics } from './evaluate.js';
import { buildExamples, type KindConfig } from './examples.js';

export interface RunEvaluation {
  runId: number;
  /** How the run tuned the encoder: every layer (full) or the head alone. */
  tune: string;
  /** Entities with both a base and a fine-tuned vector: the ones evaluated. */
  entities: number;
  base: SpaceMetrics;
  tuned: SpaceMetrics;
  /**
   * The last finished run of the other way of tuning on the same held-out split (same kinds,
   * share and seed), as it recorded its test metrics: head-only beside full, or full beside head.
   */
  other?: { runId: number; tune: string; tuned: SpaceMetrics };
}

/** A run's tune mode: runs before the full fine-tune existed tuned the head. */
export const runTune = (run: Run): string => String((run.config as { tune?: string }).tune ?? 'head');

/** The last finished training run, or undefined when there is none. */
export function lastTrainingRun(store: Store): Run | undefined {
  return store
    .runs({ kind: 'train' })
    .reverse()
    .find((r) => r.status === 'done');
}

export function evaluateRun(store: Store, run: Run): RunEvaluation {
  // trainStep stores its whole configuration with the run.
  const config = run.config as unknown as { kinds: Record<string, KindConfig>; holdOut: number; seed: number };
  const base = store.vectors(BASE_MODEL_ID);
  const tuned = store.vectors(TUNED_MODEL_ID);
  // Rows in the base set's (entity id) order, as training laid them out; an entity ingested since
  // has no tuned vector and is left out.
  const rowsOf = (set: VectorSet) => new Map(set.refs.map((r, i) => [r, i]));
  const baseRow = rowsOf(base);
  const tunedRow = rowsOf(tuned);
  const refs = base.refs.filter((r) => tunedRow.has(r));
  const { dim } = base;
  const gather = (set: VectorSet, rowOf: Map<string, number>) => gatherRows(set.matrix, dim, refs.map((ref) => rowOf.get(ref)!));
  const examples = buildExamples(store, new Map(refs.map((r, i) => [r, i])), config.kinds, config.holdOut, config.seed);
  const split = (r: Run) => {
    const c = r.config as { kinds?: unknown; holdOut?: unknown; seed?: unknown };
    return JSON.stringify([c.kinds, c.holdOut, c.seed]);
  };
  const other = store
    .runs({ kind: 'train' })
    .reverse()
    .find((r) => r.status === 'done' && runTune(r) !== runTune(run) && r.dataHash === run.dataHash && split(r) === split(run));
  return {
    runId: run.id,
    tune: runTune(run),
    ...(other ? { other: { runId: other.id, tune: runTune(other), tuned: (other.metrics as { tuned: SpaceMetrics }).tuned } } : {}),
    entities: refs.length,
    base: evaluateSpace(gather(base, baseRow), dim, refs, examples.test),
    tuned: evaluateSpace(gather(tuned, tunedRow), dim, refs, examples.test),
  };
}
