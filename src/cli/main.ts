/** The `laborspace` command line: parses arguments, calls the library, formats the answer. */
import { Command, InvalidArgumentError, Option } from 'commander';

import { parseFirmColumns } from '../data/firms.js';
import { defaultHome, openHomeStore } from '../home.js';
import { nativeInfo } from '../native.js';
import { VERSION } from '../version.js';
import { formatIngestSummary, runIngest } from './ingest.js';
import { formatShow, showEntity } from './show.js';

interface GlobalOptions {
  home: string;
  json?: boolean;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function firmColumns(value: string) {
  try {
    return parseFirmColumns(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

const print = (json: boolean | undefined, value: unknown, text: () => string) => console.log(json ? JSON.stringify(value) : text());

export function buildProgram(): Command {
  const program = new Command('laborspace')
    .description('Industries, occupations, skills and firms in one vector space')
    .version(VERSION)
    .option('--home <dir>', 'where the store, models and indices live', defaultHome())
    .option('--json', 'machine-readable output')
    .showHelpAfterError();
  const globals = () => program.opts<GlobalOptions>();

  const ingestOptions = (cmd: Command) =>
    cmd
      .option('--data <dir>', 'data folder in the raw layout (default: the bundled data)')
      .addOption(new Option('--on-error <mode>', 'malformed rows: skip and report, or fail the load').choices(['skip', 'fail']).default('skip'))
      .option('--firms <file>', 'also load a firm file (CSV, TSV or XLSX, e.g. a Crunchbase export)')
      .option('--firm-columns <map>', 'columns of --firms: name=COL,description=COL[,id=COL][,categories=COL]', firmColumns)
      .option('--firm-source <name>', 'entity source of --firms firms', 'custom')
      .option('--naics-2022 <dir>', 'also load NAICS 2022 (Census code list and descriptions) as industry:naics2022:*');

  const ingestAction = async (opts: {
    data?: string;
    onError: 'skip' | 'fail';
    firms?: string;
    firmColumns?: ReturnType<typeof parseFirmColumns>;
    firmSource: string;
    naics2022?: string;
  }) => {
    const { home, json } = globals();
    if (opts.firms && !opts.firmColumns) throw new InvalidArgumentError('--firms needs --firm-columns');
    const store = openHomeStore(home);
    try {
      const summary = await runIngest(store, { ...opts, json });
      print(json, summary, () => formatIngestSummary(summary));
    } finally {
      store.close();
    }
  };

  ingestOptions(program.command('build').description('build the space from the bundled data (today: ingest; encoding, training and indexing follow as they land)')).action(ingestAction);
  ingestOptions(program.command('ingest').description('load NAICS, O*NET, ESCO, firms and crosswalks into the store')).action(ingestAction);

  program
    .command('show')
    .description('an entity, its text and its relations')
    .argument('<ref>', 'TYPE:SOURCE:CODE, or TYPE:CODE where unambiguous')
    .option('--limit <n>', 'relations shown per kind', positiveInt, 10)
    .action((ref: string, opts: { limit: number }) => {
      const { home, json } = globals();
      const store = openHomeStore(home);
      try {
        const result = showEntity(store, ref, opts.limit);
        print(json, result, () => formatShow(result, (r) => store.entity(r)?.title));
      } finally {
        store.close();
      }
    });

  program
    .command('info')
    .description('show the native core: instruction set, threads, CUDA')
    .action(() => {
      const info = nativeInfo();
      const { home, json } = globals();
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

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
