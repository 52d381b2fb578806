/** The `laborspace` command line: parses arguments, calls the library, formats the answer. */
import { Command } from 'commander';

import { defaultHome } from '../home.js';
import { nativeInfo } from '../native.js';
import { VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command('laborspace')
    .description('Industries, occupations, skills and firms in one vector space')
    .version(VERSION)
    .option('--home <dir>', 'where the store, models and indices live', defaultHome())
    .option('--json', 'machine-readable output')
    .showHelpAfterError();

  program
    .command('info')
    .description('show the native core: instruction set, threads, CUDA')
    .action(() => {
      const info = nativeInfo();
      const { home, json } = program.opts<{ home: string; json?: boolean }>();
      if (json) {
        console.log(JSON.stringify({ version: VERSION, home, native: info }));
        return;
      }
      console.log(`laborspace ${VERSION}`);
      console.log(`home      ${home}`);
      console.log(`isa       ${info.isa} (supported: ${info.isas.join(', ')})`);
      console.log(`threads   ${info.threads}`);
      console.log(
        `cuda      ${info.cuda.compiled ? `compiled, ${info.cuda.devices} device(s)${info.cuda.name ? ` (${info.cuda.name})` : ''}` : 'not compiled'}`,
      );
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
