// AVX-512 kernels (Skylake-X, Ice Lake, Zen 4). Same arrangement as kernels_avx2.cpp: a target
// region, chosen at run time.
#include <algorithm>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // x86 only: other CPUs build the stub below

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
// GCC 12's own reduce/cast intrinsics trip these on purpose-undefined upper lanes.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// These inside the target region: compiled for this ISA.
#include "adamw_body.h"
#include "i8_rows_tail.h"
#include "gemm_pack.h"
#include "transpose8_avx.h"

namespace laborspace {
namespace {

// 12 x 32 tile: 24 zmm accumulators, 2 loads of the query panel, database values broadcast
// straight from their rows.
constexpr size_t kRows = 12;
constexpr size_t kQueries = 32;

inline __mmask16 tail_mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

bool gemm_tile_avx512(const float* const* rows, const float* scale, const float* b, size_t d, float* c,
                      const float* thresholds, uint32_t* hits) {
  const float* r[kRows];
  __m512 acc[kRows][2];
#pragma GCC unroll 12
  for (size_t i = 0; i < kRows; ++i) {
    r[i] = rows[i];
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  }
  for (size_t p = 0; p < d; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b + p * kQueries);
    const __m512 b1 = _mm512_loadu_ps(b + p * kQueries + 16);
#pragma GCC unroll 12
    for (size_t i = 0; i < kRows; ++i) {
      const __m512 ai = _mm512_set1_ps(r[i][p]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // x - x is 0 for finite x and NaN otherwise: one unordered compare flags the whole tile.
  __m512 probe = _mm512_setzero_ps();
  const __m512 t0 = _mm512_loadu_ps(thresholds), t1 = _mm512_loadu_ps(thresholds + 16);
#pragma GCC unroll 12
  for (size_t i = 0; i < kRows; ++i) {
    const __m512 s = _mm512_set1_ps(scale[i]);
    const __m512 v0 = _mm512_mul_ps(acc[i][0], s), v1 = _mm512_mul_ps(acc[i][1], s);
    _mm512_storeu_ps(c + i * kQueries, v0);
    _mm512_storeu_ps(c + i * kQueries + 16, v1);
    probe = _mm512_add_ps(probe, _mm512_add_ps(_mm512_sub_ps(v0, v0), _mm512_sub_ps(v1, v1)));
    hits[i] = uint32_t(_mm512_cmp_ps_mask(v0, t0, _CMP_GT_OQ)) | uint32_t(_mm512_cmp_ps_mask(v1, t1, _CMP_GT_OQ)) << 16;
  }
  return _mm512_cmp_ps_mask(probe, probe, _CMP_UNORD_Q) == 0;
}

// 6 x 64 block of C from packed panels: per step of k, four loads of B, six broadcasts of A and
// 24 FMAs. Measured on Zen 4 against 12 x 32 (the same) and 24 x 16 with the broadcasts folded
// into the FMAs (10% slower).
constexpr size_t kMr = 6;
constexpr size_t kNr = 64;

void gemm_micro_avx512(const float* a, const float* b, size_t k, float* c, size_t ldc, size_t rows, size_t cols,
                       bool accumulate) {
  __m512 acc[kMr][4];
#pragma GCC unroll 6
  for (size_t i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm512_setzero_ps();
  for (size_t p = 0; p < k; ++p) {
    const float* bp = b + p * kNr;
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
    const __m512 b2 = _mm512_loadu_ps(bp + 32), b3 = _mm512_loadu_ps(bp + 48);
    const float* ap = a + p * kMr;
#pragma GCC unroll 6
    for (size_t i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(ai, b3, acc[i][3]);
    }
  }
  __mmask16 masks[4];
  for (size_t q = 0; q < 4; ++q) masks[q] = cols >= 16 * (q + 1) ? __mmask16(0xFFFF) : cols > 16 * q ? tail_mask(cols - 16 * q) : __mmask16(0);
  for (size_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (size_t q = 0; q < 4; ++q) {
      __m512 v = acc[i][q];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[q], ci + 16 * q));
      _mm512_mask_storeu_ps(ci + 16 * q, masks[q], v);
    }
  }
}

// Rows are read one after another, front to back, so the hardware prefetcher sees one stream
// (interleaving several rows measured ~45% slower on Zen 4 when bound by memory).
void row_dots_avx512(const float* q, const float* x, size_t rows, size_t d, float* out, float* sq_norms) {
  const size_t body = d & ~size_t(63);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m512 n0 = s0, n1 = s0, n2 = s0, n3 = s0;
    size_t p = 0;
    for (; p < body; p += 64) {
      const __m512 v0 = _mm512_loadu_ps(xr + p), v1 = _mm512_loadu_ps(xr + p + 16);
      const __m512 v2 = _mm512_loadu_ps(xr + p + 32), v3 = _mm512_loadu_ps(xr + p + 48);
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p), v0, s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p + 16), v1, s1);
      s2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p + 32), v2, s2);
      s3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + p + 48), v3, s3);
      if (sq_norms) {
        n0 = _mm512_fmadd_ps(v0, v0, n0);
        n1 = _mm512_fmadd_ps(v1, v1, n1);
        n2 = _mm512_fmadd_ps(v2, v2, n2);
        n3 = _mm512_fmadd_ps(v3, v3, n3);
      }
    }
    for (; p < d; p += 16) {
      const __mmask16 m = p + 16 <= d ? __mmask16(0xFFFF) : tail_mask(d - p);
      const __m512 v = _mm512_maskz_loadu_ps(m, xr + p);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + p), v, s0);
      n0 = _mm512_fmadd_ps(v, v, n0);
    }
    out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    if (sq_norms) sq_norms[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(n0, n1), _mm512_add_ps(n2, n3)));
  }
}

void axpy_avx512(float alpha, const float* x, float* y, size_t d) {
  const __m512 a = _mm512_set1_ps(alpha);
  size_t p = 0;
  for (; p + 16 <= d; p += 16) _mm512_storeu_ps(y + p, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + p), _mm512_loadu_ps(y + p)));
  if (p < d) {
    const __mmask16 m = tail_mask(d - p);
    _mm512_mask_storeu_ps(y + p, m, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + p), _mm512_maskz_loadu_ps(m, y + p)));
  }
}

double sum_squares_avx512(const float* x, size_t d) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  size_t p = 0;
  for (; p + 16 <= d; p += 16) {
    const __m512 v = _mm512_loadu_ps(x + p);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    s0 = _mm512_fmadd_pd(lo, lo, s0);
    s1 = _mm512_fmadd_pd(hi, hi, s1);
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; p < d; ++p) s += double(x[p]) * x[p];
  return s;
}

// As the AVX2 kernel (four rows at a time, their lanes summed together), 64 values of a row per
// step in two halves.
inline __m128i sum4_epi32(const __m512i a[4]) {
  __m128i t[4];
  for (int j = 0; j < 4; ++j) {
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a[j]), _mm512_extracti64x4_epi64(a[j], 1));
    t[j] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  }
  return _mm_hadd_epi32(_mm_hadd_epi32(t[0], t[1]), _mm_hadd_epi32(t[2], t[3]));
}

void row_dots_i8_avx512(const int16_t* q, const int8_t* x, size_t rows, size_t d, int64_t* out) {
  const size_t body = d & ~size_t(63);
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const int8_t* xr = x + r * d;
    __m256i sums = _mm256_setzero_si256();  // the four rows' int64 sums
    size_t p = 0;
    while (p < body) {
      const size_t end = std::min(body, p + kI8Block);
      __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      for (; p < end; p += 64) {
        const __m512i q0 = _mm512_loadu_si512(q + p), q1 = _mm512_loadu_si512(q + p + 32);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const int8_t* row = xr + j * d + p;
          const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)));
          const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32)));
          acc[j] = _mm512_add_epi32(acc[j], _mm512_add_epi32(_mm512_madd_epi16(x0, q0), _mm512_madd_epi16(x1, q1)));
        }
      }
      sums = _mm256_add_epi64(sums, _mm256_cvtepi32_epi64(sum4_epi32(acc)));
    }
    alignas(32) int64_t s4[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s4), sums);
    finish_four_rows(s4, q, xr, d, p, out + r);
  }
  for (; r < rows; ++r) {
    const int8_t* xr = x + r * d;
    int64_t s = 0;
    size_t p = 0;
    while (p < body) {
      const size_t end = std::min(body, p + kI8Block);
      __m512i a0 = _mm512_setzero_si512(), a1 = a0;
      for (; p < end; p += 64) {
        const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + p)));
        const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + p + 32)));
        a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(x0, _mm512_loadu_si512(q + p)));
        a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(x1, _mm512_loadu_si512(q + p + 32)));
      }
      const __m512i sum = _mm512_add_epi32(a0, a1);
      s += _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(sum)),
                                                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(sum, 1))));
    }
    for (; p < d; ++p) s += int32_t(q[p]) * xr[p];
    out[r] = s;
  }
}

// exp(x) = 2^n e^r with n = round(x / ln 2): r is split off with ln 2 in two parts (hi exact in
// float) so it stays exact, e^r is Taylor to degree 7 (error < 6e-9 for |r| <= 0.347) and scalef
// applies 2^n. Inputs are clamped to the float range (exp(-87.3) ~ 1.2e-38).
inline __m512 exp_ps(__m512 x) {
  // The constant first: min/max return their second operand when either is NaN, so NaN stays NaN.
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), _mm512_min_ps(_mm512_set1_ps(88.3f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// tanh|x| = 1 - 2 / (exp(2|x|) + 1), sign restored; saturates to 1 past |x| ~ 9.
inline __m512 tanh_ps(__m512 x) {
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.f));
  const __m512 e = exp_ps(_mm512_add_ps(_mm512_andnot_ps(sign, x), _mm512_andnot_ps(sign, x)));
  const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.f), _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(e, _mm512_set1_ps(1.f))));
  return _mm512_or_ps(t, sign);
}

template <__m512 (*F)(__m512)>
void map_inplace(float* x, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

const IsaKernels* kernels_avx512() {
  static const IsaKernels table{Isa::avx512,       kRows,          kQueries,         gemm_tile_avx512,
                                row_dots_avx512,   axpy_avx512,    sum_squares_avx512, row_dots_i8_avx512,
                                kMr,               kNr,            gemm_micro_avx512, pack_panel<kMr>, pack_panel<kNr, transpose8_avx>,
                                map_inplace<exp_ps>, map_inplace<tanh_ps>, adamw_body};
  return isa_supported(Isa::avx512) ? &table : nullptr;
}

}  // namespace laborspace

#pragma GCC pop_options
#else
namespace laborspace {
const IsaKernels* kernels_avx512() { return nullptr; }
}  // namespace laborspace
#endif
