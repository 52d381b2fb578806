// AVX-512 kernels (Skylake-X, Ice Lake, Zen 4). Same arrangement as kernels_avx2.cpp: a target
// region, chosen at run time.
#include <immintrin.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
// GCC 12's own reduce/cast intrinsics trip these on purpose-undefined upper lanes.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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

// As the AVX2 kernel, 32 bytes of a row per step; two accumulators hide the add latency.
void row_dots_i8_avx512(const int16_t* q, const int8_t* x, size_t rows, size_t d, int32_t* out) {
  const size_t body = d & ~size_t(63);
  for (size_t r = 0; r < rows; ++r) {
    const int8_t* xr = x + r * d;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    size_t p = 0;
    for (; p < body; p += 64) {
      const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + p)));
      const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + p + 32)));
      a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(x0, _mm512_loadu_si512(q + p)));
      a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(x1, _mm512_loadu_si512(q + p + 32)));
    }
    int32_t s = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
    for (; p < d; ++p) s += int32_t(q[p]) * xr[p];
    out[r] = s;
  }
}

}  // namespace

const IsaKernels* kernels_avx512() {
  static const IsaKernels table{Isa::avx512, kRows, kQueries, gemm_tile_avx512, row_dots_avx512, axpy_avx512,
                                sum_squares_avx512, row_dots_i8_avx512};
  return isa_supported(Isa::avx512) ? &table : nullptr;
}

}  // namespace laborspace

#pragma GCC pop_options
#else
namespace laborspace {
const IsaKernels* kernels_avx512() { return nullptr; }
}  // namespace laborspace
#endif
