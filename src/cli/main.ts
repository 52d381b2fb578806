/** The `laborspace` command line: the program, its global options and its commands (one module each under commands/). */
import { Command } from 'commander';

import { defaultHome } from '../home.js';
import { VERSION } from '../version.js';
import { registerArith } from './commands/arith.js';
import { registerAxis } from './commands/axis.js';
import { registerBuild } from './commands/build.js';
import { registerEncode } from './commands/encode.js';
import { registerEval } from './commands/eval.js';
import { registerExport } from './commands/export.js';
import { registerExposure } from './commands/exposure.js';
import { registerIndex } from './commands/indices.js';
import { registerInfo } from './commands/info.js';
import { registerIngest } from './commands/ingest.js';
import { registerMap } from './commands/map.js';
import { registerNear } from './commands/near.js';
import { registerScore } from './commands/score.js';
import { registerServe } from './commands/serve.js';
import { registerShock } from './commands/shock.js';
import { registerShow } from './commands/show.js';
import { registerTrain } from './commands/train.js';
import { registerWorker } from './commands/worker.js';
import { cliContext } from './context.js';
import { checkCommandLine } from './options.js';

/** In the order `--help` lists them. */
const COMMANDS = [
  registerBuild,
  registerIngest,
  registerEncode,
  registerTrain,
  registerEval,
  registerIndex,
  registerNear,
  registerArith,
  registerAxis,
  registerShock,
  registerExposure,
  registerMap,
  registerScore,
  registerServe,
  registerWorker,
  registerShow,
  registerExport,
  registerInfo,
];

export function buildProgram(): Command {
  const program = new Command('laborspace')
    .description('Industries, occupations, skills and firms in one vector space')
    .version(VERSION)
    .option('--home <dir>', 'where the store, models and indices live', defaultHome())
    .option('--json', 'machine-readable output')
    .showHelpAfterError()
    // rawArgs: the argv given to parse (set by commander, missing from its types).
    .hook('preAction', () => checkCommandLine((program as unknown as { rawArgs: string[] }).rawArgs.slice(2)));
  const cli = cliContext(program);
  for (const register of COMMANDS) register(program, cli);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
