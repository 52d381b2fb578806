/** Tables for the terminal: coloured headers on a TTY, plain text when piped. */
import Table from 'cli-table3';

export function newTable(head: string[]): Table.Table {
  return new Table(process.stdout.isTTY ? { head } : { head, style: { head: [], border: [] } });
}

/** A number as a table cell: three decimals, empty where there is none. */
export const numberCell = (v: number | undefined) => (v === undefined ? '' : v.toFixed(3));
