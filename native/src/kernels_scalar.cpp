// Portable kernels: the reference every SIMD table is tested against, and the fallback for
// CPUs without AVX2. Written as plain loops; the compiler may use the x86-64 baseline (SSE2).
#include <cmath>

#include "adamw_body.h"
#include "gemm_pack.h"
#include "kernels.h"

namespace laborspace {
namespace {

constexpr size_t kRows = 4;
constexpr size_t kQueries = 8;

bool gemm_tile_scalar(const float* const* rows, const float* scale, const float* b, size_t d, float* c,
                      const float* thresholds, uint32_t* hits) {
  float acc[kRows][kQueries] = {};
  for (size_t p = 0; p < d; ++p) {
    const float* bp = b + p * kQueries;
    for (size_t r = 0; r < kRows; ++r)
      for (size_t j = 0; j < kQueries; ++j) acc[r][j] += rows[r][p] * bp[j];
  }
  bool finite = true;
  for (size_t r = 0; r < kRows; ++r) {
    hits[r] = 0;
    for (size_t j = 0; j < kQueries; ++j) {
      const float s = acc[r][j] * scale[r];
      c[r * kQueries + j] = s;
      finite &= std::isfinite(s);
      hits[r] |= uint32_t(s > thresholds[j]) << j;
    }
  }
  return finite;
}

void row_dots_scalar(const float* q, const float* x, size_t rows, size_t d, float* out, float* sq_norms) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float dot = 0.f, sq = 0.f;
    for (size_t p = 0; p < d; ++p) {
      dot += q[p] * xr[p];
      sq += xr[p] * xr[p];
    }
    out[r] = dot;
    if (sq_norms) sq_norms[r] = sq;
  }
}

void axpy_scalar(float alpha, const float* x, float* y, size_t d) {
  for (size_t p = 0; p < d; ++p) y[p] += alpha * x[p];
}

double sum_squares_scalar(const float* x, size_t d) {
  double s = 0;
  for (size_t p = 0; p < d; ++p) s += double(x[p]) * x[p];
  return s;
}

void row_dots_i8_scalar(const int16_t* q, const int8_t* x, size_t rows, size_t d, int64_t* out) {
  for (size_t r = 0; r < rows; ++r) {
    int64_t s = 0;
    for (size_t p = 0; p < d; ++p) s += int32_t(q[p]) * x[r * d + p];
    out[r] = s;
  }
}

constexpr size_t kMr = 4;
constexpr size_t kNr = 8;

void gemm_micro_scalar(const float* a, const float* b, size_t k, float* c, size_t ldc, size_t rows, size_t cols,
                       bool accumulate) {
  float acc[kMr][kNr] = {};
  for (size_t p = 0; p < k; ++p)
    for (size_t i = 0; i < kMr; ++i)
      for (size_t j = 0; j < kNr; ++j) acc[i][j] += a[p * kMr + i] * b[p * kNr + j];
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void exp_inplace_scalar(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

void tanh_inplace_scalar(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
}

}  // namespace

const IsaKernels& kernels_scalar() {
  static const IsaKernels table{Isa::scalar,       kRows,           kQueries,          gemm_tile_scalar,
                                row_dots_scalar,   axpy_scalar,     sum_squares_scalar, row_dots_i8_scalar,
                                kMr,               kNr,             gemm_micro_scalar, pack_panel<kMr>, pack_panel<kNr>,
                                exp_inplace_scalar, tanh_inplace_scalar, adamw_body};
  return table;
}

}  // namespace laborspace
