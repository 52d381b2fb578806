/**
 * Training time on the bundled data: the default configuration's 1,000 steps over the pooled
 * states a built space has cached, timed with the trainer's hooks (the steps, the validations) and
 * per epoch (the training pairs once, in batches of 128). Trains in memory: the space's store and
 * models are left as they are.
 * Needs a built space (npx laborspace build).
 * Usage: npm run bench:train [-- --home DIR]
 */
import Table from 'cli-table3';

import { pooledStates } from '../src/encoder/encode-entities.js';
import { ensureUseLiteModel } from '../src/encoder/model-cache.js';
import { SentenceEncoder } from '../src/encoder/sentence-encoder.js';
import { defaultHome, openHomeStore } from '../src/home.js';
import { buildExamples, DEFAULT_KINDS } from '../src/train/examples.js';
import { pretrainedHead } from '../src/train/run.js';
import { DEFAULT_TRAIN_CONFIG, trainHead } from '../src/train/trainer.js';
import { describeMachine, machineLine } from './machine.js';

const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const home = arg('--home', defaultHome());

const store = openHomeStore(home);
const started = performance.now();
const encoder = await SentenceEncoder.load(ensureUseLiteModel(home).dir);
const pooled = await pooledStates(store, encoder);
await encoder.close();
const config = DEFAULT_TRAIN_CONFIG;
const examples = buildExamples(store, new Map(pooled.refs.map((r, i) => [r, i])), DEFAULT_KINDS, 0.2, config.seed);
store.close();
const prepared = performance.now();

// Step times are the gaps between consecutive onStep calls; a validation restarts the clock.
let last = 0;
let stepMs = 0;
let steps = 0;
const result = trainHead(pooled, examples.train, examples.validation, pretrainedHead(), config, {
  onStep: () => {
    const now = performance.now();
    if (last) {
      stepMs += now - last;
      steps++;
    }
    last = now;
  },
  onEval: () => {
    last = performance.now();
  },
});
const trained = performance.now();
const pairs = examples.train.reduce((n, set) => n + set.anchors.length, 0);
const perStep = stepMs / steps;
const table = new Table({ head: ['part', 'seconds'] });
table.push(
  ['pooled states (cached) and examples', ((prepared - started) / 1000).toFixed(1)],
  [`${result.stepsRun} training steps (${perStep.toFixed(2)} ms each)`, ((perStep * result.stepsRun) / 1000).toFixed(1)],
  ['the initial evaluation and the validations', ((trained - prepared - stepMs) / 1000).toFixed(1)],
  [`one epoch: ${pairs.toLocaleString('en-US')} pairs, ${Math.ceil(pairs / config.batchSize)} steps of ${config.batchSize}`, ((perStep * Math.ceil(pairs / config.batchSize)) / 1000).toFixed(1)],
);
console.log(`\nTraining on the bundled data (${home})`);
console.log(machineLine(describeMachine()));
console.log(table.toString());
