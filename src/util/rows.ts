/** Rows `rows` of a row-major matrix `dim` wide, stacked in that order. */
export function gatherRows(matrix: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(matrix.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}
