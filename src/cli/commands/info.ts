/** `laborspace info`: the version, the home and the native core (instruction set, threads, CUDA). */
import type { Command } from 'commander';

import { nativeInfo } from '../../native.js';
import { VERSION } from '../../version.js';
import { type Cli, print } from '../context.js';

export function registerInfo(program: Command, cli: Cli): void {
  program
    .command('info')
    .description('show the native core: instruction set, threads, CUDA')
    .action(() => {
      const info = nativeInfo();
      const { home, json } = cli.globals();
      print(json, { version: VERSION, home, native: info }, () =>
        [
          `laborspace ${VERSION}`,
          `home      ${home}`,
          `isa       ${info.isa} (supported: ${info.isas.join(', ')})`,
          `threads   ${info.threads}`,
          `cuda      ${info.cuda.compiled ? `compiled, ${info.cuda.devices} device(s)${info.cuda.name ? ` (${info.cuda.name})` : ''}` : 'not compiled'}`,
        ].join('\n'),
      );
    });
}
