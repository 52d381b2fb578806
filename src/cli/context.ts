/** What every command gets from the program: the global options, notes, output, the home's store or space. */
import type { Command } from 'commander';

import { openBuiltHomeStore, openHomeStore } from '../home.js';
import { LaborSpace } from '../space.js';
import type { Store } from '../store/index.js';

export interface GlobalOptions {
  home: string;
  json?: boolean;
}

export interface Cli {
  globals(): GlobalOptions;
  /** A line for the user on stderr, unless --json. */
  note(message: string): void;
  /**
   * The home's store for one command, closed however the command ends. Only the commands that fill
   * a home (`create`) make a missing one; the others say it is missing.
   */
  withStore(use: (store: Store) => void | Promise<void>, options?: { create?: boolean }): Promise<void>;
  /** The home's space for one command, closed however the command ends. */
  withSpace(use: (space: LaborSpace) => Promise<void>): Promise<void>;
}

export function cliContext(program: Command): Cli {
  const globals = () => program.opts<GlobalOptions>();
  const note = (message: string) => {
    if (!globals().json) process.stderr.write(`${message}\n`);
  };
  return {
    globals,
    note,
    async withStore(use, options = {}) {
      const store = (options.create ? openHomeStore : openBuiltHomeStore)(globals().home);
      try {
        await use(store);
      } finally {
        store.close();
      }
    },
    async withSpace(use) {
      const space = await LaborSpace.open(globals().home, { onNote: note });
      try {
        await use(space);
      } finally {
        await space.close();
      }
    },
  };
}

/** The answer on stdout: JSON with --json, else the text. */
export const print = (json: boolean | undefined, value: unknown, text: () => string) => console.log(json ? JSON.stringify(value) : text());
