/** Progress on stderr: a bar on a terminal, plain lines otherwise, nothing with --json. */
import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number, label: string): void;
  stop(): void;
}

export function progress(task: string, quiet: boolean | undefined): Progress {
  if (quiet) return { update: () => {}, stop: () => {} };
  if (!process.stderr.isTTY) {
    let last = '';
    return {
      update: (done, total, label) => {
        if (label !== last) process.stderr.write(`${task} [${done}/${total}] ${label}\n`);
        last = label;
      },
      stop: () => {},
    };
  }
  const bar = new SingleBar({ format: `${task} [{bar}] {value}/{total} {label}`, hideCursor: true, stream: process.stderr });
  let started = false;
  return {
    update: (done, total, label) => {
      if (!started) bar.start(total, done, { label });
      started = true;
      bar.setTotal(total);
      bar.update(done, { label });
    },
    stop: () => started && bar.stop(),
  };
}
