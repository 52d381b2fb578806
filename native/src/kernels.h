// Plain C++ kernels of Labor Space: no Node types. Row-major float32 matrices, explicit sizes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace laborspace {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };
enum class Metric { dot = 0, cosine = 1 };

const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);

// One instruction set's kernels. The driver (topk.cpp) packs operands for `gemm_tile` using the
// table's own tile shape, so each ISA picks the shape that fits its register file.
// Values of an int8 dot product the SIMD kernels sum in int32 lanes before widening them to int64:
// a lane then holds at most kI8Block / 8 products of at most 127^2, far below 2^31.
constexpr size_t kI8Block = size_t(1) << 16;

struct IsaKernels {
  Isa isa;
  size_t tile_rows;     // database rows per tile: read in place and broadcast, never packed
  size_t tile_queries;  // queries per tile: the packed vector side (at most 32)
  // For tile_rows database rows (pointers into the row-major matrix) and one panel of queries
  // packed as b[p*tile_queries + j]:
  //   c[r*tile_queries + j] = scale[r] * sum_p rows[r][p] * b[p*tile_queries + j],
  // and bit j of hits[r] is set when that score exceeds thresholds[j], so the top-k selection
  // only visits candidates. Returns false when any score is NaN or infinite.
  bool (*gemm_tile)(const float* const* rows, const float* scale, const float* b, size_t d, float* c,
                    const float* thresholds, uint32_t* hits);
  // out[r] = dot(q, x + r*d) for `rows` consecutive rows; sq_norms[r] = |x_r|^2 when not null.
  void (*row_dots)(const float* q, const float* x, size_t rows, size_t d, float* out, float* sq_norms);
  // y += alpha * x
  void (*axpy)(float alpha, const float* x, float* y, size_t d);
  // sum of squares, accumulated in double so a long row's norm is exact to float precision.
  double (*sum_squares)(const float* x, size_t d);
  // out[r] = sum_p q[p] * x[r*d + p] for int8 rows and a query of int8 values widened to int16,
  // exact for every d: a row's sum passes 2^31 from d ~ 2^17, so it is kept in int64.
  void (*row_dots_i8)(const int16_t* q, const int8_t* x, size_t rows, size_t d, int64_t* out);
  // The GEMM micro-kernel: a gemm_mr x gemm_nr block of C from op(A) packed as
  // a[p*gemm_mr + i] and op(B) packed as b[p*gemm_nr + j] (both zero-padded), for p < k:
  //   c[i*ldc + j] (+)= sum_p a[p*gemm_mr + i] * b[p*gemm_nr + j], for i < rows, j < cols.
  // Both operands stream through memory in order, so the caches and prefetchers keep up.
  size_t gemm_mr, gemm_nr;
  void (*gemm_micro)(const float* a, const float* b, size_t k, float* c, size_t ldc, size_t rows, size_t cols,
                     bool accumulate);
  // Packing for it (gemm_pack.h): `count` lines of an operand from line `first` into a panel of
  // gemm_mr (pack_a) or gemm_nr (pack_b) lines, k-major and zero-padded; `lines_contiguous` when a
  // line is stored as src[line*ld + p], else as src[p*ld + line].
  void (*gemm_pack_a)(bool lines_contiguous, const float* src, size_t ld, size_t first, size_t count, size_t k,
                      float* out);
  void (*gemm_pack_b)(bool lines_contiguous, const float* src, size_t ld, size_t first, size_t count, size_t k,
                      float* out);
  // x[i] = exp(x[i]) and x[i] = tanh(x[i]) in place, to within a few float ulps (absolute 2e-7 for
  // tanh): a degree-7 Taylor polynomial on the reduced argument |r| <= ln(2)/2, times 2^n.
  void (*exp_inplace)(float* x, size_t n);
  void (*tanh_inplace)(float* x, size_t n);
  // One AdamW update of n parameters with the bias corrections folded into step_size and inv_c2.
  void (*adamw)(float* param, const float* grad, float* m, float* v, size_t n, float beta1, float beta2, float eps,
                float decay, float step_size, float inv_c2);
};

const IsaKernels& kernels_scalar();
const IsaKernels* kernels_avx2();    // null when this build or CPU lacks AVX2+FMA
const IsaKernels* kernels_avx512();  // null when this build or CPU lacks AVX-512 F/DQ/BW/VL

// The best table this CPU runs, unless overridden with set_active_isa (tests compare every ISA).
const IsaKernels& active_kernels();
bool set_active_isa(Isa isa);  // false when the CPU cannot run it
bool isa_supported(Isa isa);

// Threads used by the drivers for large inputs (default: hardware concurrency).
size_t thread_count();
void set_thread_count(size_t n);

// ---- Drivers. All return an Error with kind none on success. ----
struct Error {
  enum Kind { none, non_finite, overflow, bad_argument, device } kind = none;
  std::string message;
  explicit operator bool() const { return kind != none; }
};

// L2-normalise each of n rows of x into out (which may equal x). Zero rows stay zero.
void normalize_rows(const float* x, size_t n, size_t d, float* out);

// C (m x n, row stride ldc) = op(A) op(B), or C += op(A) op(B) when `accumulate`; op(A) is m x k
// and op(B) is k x n. A is stored m x k (row stride lda), or k x m when transposed; B is stored
// k x n (ldb), or n x k when transposed. The products of the training kernels.
enum class Op { none, transpose };
void gemm(Op op_a, Op op_b, size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b, size_t ldb,
          float* c, size_t ldc, bool accumulate);

// Index of the first NaN or infinity in x[0..len), or len when all are finite.
size_t first_non_finite(const float* x, size_t len);

// out[i*n + j] = score(q_i, x_j) for m queries and n rows.
Error similarity(const float* q, size_t m, const float* x, size_t n, size_t d, Metric metric, float* out);

// The k best rows per query by score (descending; equal scores by ascending row index), over
// the rows whose mask byte is non-zero (all rows when mask is null). k_out = min(k, eligible);
// out_idx and out_scores hold m * k_out entries.
Error topk(const float* q, size_t m, const float* x, size_t n, size_t d, size_t k, Metric metric,
           const uint8_t* mask, int32_t* out_idx, float* out_scores, size_t* k_out);

// Why the scores of database row `row` were not finite (a NaN/infinite value, or overflow).
Error describe_bad_row(const float* x, size_t row, size_t d);

// Number of rows selected by the mask (n when mask is null).
size_t count_eligible(const uint8_t* mask, size_t n);

// out[c*d ...] = sum_{t in offsets[c]..offsets[c+1]} weights[t] * x[indices[t]] for each of
// `count` combinations. Indices must be < n (checked by the caller).
void combine_rows(const float* x, size_t d, const int32_t* indices, const float* weights,
                  const int32_t* offsets, size_t count, float* out);

// Symmetric per-row int8 quantisation: codes[r*d + p] = round(x[r*d + p] / scales[r]), with
// scales[r] = max_p |x[r*d + p]| / 127 (1 for a zero row).
void quantize_rows(const float* x, size_t n, size_t d, int8_t* codes, float* scales);

// Approximate-then-exact top-k for unit-free scores (dot): each query is quantised to int8, every
// row scored in int8 (a quarter of the bytes of fp32), the `candidates` best kept, and those
// re-scored exactly against the fp32 rows `x`. With a `projection` (r x d, rows orthonormal) the
// codes are of the rows projected to r dimensions (n x r; centred or not: a shift adds the same
// to every row's score) and the queries are projected too, so the coarse pass reads r / d of the
// bytes; without one, r = d and the codes are of the rows themselves. Same contract as topk
// otherwise.
Error topk_quantized(const float* q, size_t m, const float* projection, size_t r, const int8_t* codes, const float* scales,
                     const float* x, size_t n, size_t d, size_t k, size_t candidates, int32_t* out_idx, float* out_scores,
                     size_t* k_out);

// Machine probes for the benchmarks: streaming read bandwidth (bytes/s) over x[0..len) (the data a
// benchmark scans, so both see the same cache residency), and fp32 FMA throughput (FLOP/s) of the
// active ISA, both on `threads` threads.
double probe_read_bandwidth(const float* x, size_t len, size_t threads);
double probe_fma_peak(size_t threads);

}  // namespace laborspace
