/** Where in which file a row went wrong. */
export interface RowLocation {
  file: string;
  line?: number;
  column?: string;
}

/** A load that cannot go on: the file cannot be read, or a malformed row under `onError: 'fail'`. */
export class IngestError extends Error {
  readonly location: RowLocation;
  constructor(location: RowLocation, message: string) {
    super(`${formatLocation(location)}: ${message}`);
    this.name = 'IngestError';
    this.location = location;
  }
}

export function formatLocation({ file, line, column }: RowLocation): string {
  return `${file}${line !== undefined ? `:${line}` : ''}${column ? ` (column ${column})` : ''}`;
}
