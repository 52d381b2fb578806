// AVX2 + FMA kernels (Haswell and later, Zen). Compiled with a target attribute on this region
// only, so the binary still runs on CPUs without AVX2; dispatch.cpp decides at run time.
#include <algorithm>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // x86 only: other CPUs build the stub below

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// These inside the target region: compiled for this ISA.
#include "adamw_body.h"
#include "i8_rows_tail.h"
#include "gemm_pack.h"
#include "transpose8_avx.h"

namespace laborspace {
namespace {

constexpr size_t kRows = 6;  // 6 x 16 tile: 12 ymm accumulators + 2 loads of the query panel
constexpr size_t kQueries = 16;

inline __m256 tail_mask_load(const float* p, size_t n) {
  alignas(32) static const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_maskload_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes + 8 - n)));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

bool gemm_tile_avx2(const float* const* rows, const float* scale, const float* b, size_t d, float* c,
                    const float* thresholds, uint32_t* hits) {
  const float* r[kRows];
  __m256 acc[kRows][2];
#pragma GCC unroll 6
  for (size_t i = 0; i < kRows; ++i) {
    r[i] = rows[i];
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  }
  for (size_t p = 0; p < d; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * kQueries);
    const __m256 b1 = _mm256_loadu_ps(b + p * kQueries + 8);
#pragma GCC unroll 6
    for (size_t i = 0; i < kRows; ++i) {
      const __m256 ai = _mm256_broadcast_ss(r[i] + p);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // x - x is 0 for finite x and NaN otherwise: one unordered compare flags the whole tile.
  __m256 probe = _mm256_setzero_ps();
  const __m256 t0 = _mm256_loadu_ps(thresholds), t1 = _mm256_loadu_ps(thresholds + 8);
#pragma GCC unroll 6
  for (size_t i = 0; i < kRows; ++i) {
    const __m256 s = _mm256_broadcast_ss(scale + i);
    const __m256 v0 = _mm256_mul_ps(acc[i][0], s), v1 = _mm256_mul_ps(acc[i][1], s);
    _mm256_storeu_ps(c + i * kQueries, v0);
    _mm256_storeu_ps(c + i * kQueries + 8, v1);
    probe = _mm256_add_ps(probe, _mm256_add_ps(_mm256_sub_ps(v0, v0), _mm256_sub_ps(v1, v1)));
    hits[i] = uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(v0, t0, _CMP_GT_OQ))) |
              uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(v1, t1, _CMP_GT_OQ))) << 8;
  }
  return _mm256_movemask_ps(_mm256_cmp_ps(probe, probe, _CMP_UNORD_Q)) == 0;
}

// One row at a time, front to back: a single stream for the prefetcher (see kernels_avx512.cpp).
void row_dots_avx2(const float* q, const float* x, size_t rows, size_t d, float* out, float* sq_norms) {
  const size_t body = d & ~size_t(31);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 n0 = s0, n1 = s0, n2 = s0, n3 = s0;
    size_t p = 0;
    for (; p < body; p += 32) {
      const __m256 v0 = _mm256_loadu_ps(xr + p), v1 = _mm256_loadu_ps(xr + p + 8);
      const __m256 v2 = _mm256_loadu_ps(xr + p + 16), v3 = _mm256_loadu_ps(xr + p + 24);
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + p), v0, s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + p + 8), v1, s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + p + 16), v2, s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + p + 24), v3, s3);
      if (sq_norms) {
        n0 = _mm256_fmadd_ps(v0, v0, n0);
        n1 = _mm256_fmadd_ps(v1, v1, n1);
        n2 = _mm256_fmadd_ps(v2, v2, n2);
        n3 = _mm256_fmadd_ps(v3, v3, n3);
      }
    }
    for (; p < d; p += 8) {
      const size_t lanes = std::min<size_t>(8, d - p);
      const __m256 v = lanes == 8 ? _mm256_loadu_ps(xr + p) : tail_mask_load(xr + p, lanes);
      const __m256 qv = lanes == 8 ? _mm256_loadu_ps(q + p) : tail_mask_load(q + p, lanes);
      s0 = _mm256_fmadd_ps(qv, v, s0);
      n0 = _mm256_fmadd_ps(v, v, n0);
    }
    out[r] = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    if (sq_norms) sq_norms[r] = hsum(_mm256_add_ps(_mm256_add_ps(n0, n1), _mm256_add_ps(n2, n3)));
  }
}

void axpy_avx2(float alpha, const float* x, float* y, size_t d) {
  const __m256 a = _mm256_set1_ps(alpha);
  size_t p = 0;
  for (; p + 8 <= d; p += 8) _mm256_storeu_ps(y + p, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + p), _mm256_loadu_ps(y + p)));
  for (; p < d; ++p) y[p] += alpha * x[p];
}

double sum_squares_avx2(const float* x, size_t d) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  size_t p = 0;
  for (; p + 8 <= d; p += 8) {
    const __m256 v = _mm256_loadu_ps(x + p);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; p < d; ++p) s += double(x[p]) * x[p];
  return s;
}

// int8 rows widened to int16 and multiplied pairwise into int32 (vpmaddwd): no saturation, unlike
// the u8 x s8 instruction. The int32 lanes are added into int64 every kI8Block values. Four rows
// go at a time and their lanes are summed together (three hadds for four rows): one reduction per
// row dominated short rows, such as codes projected to 64 dimensions.
inline __m128i sum4_epi32(const __m256i a[4]) {
  __m128i t[4];
  for (int j = 0; j < 4; ++j) t[j] = _mm_add_epi32(_mm256_castsi256_si128(a[j]), _mm256_extracti128_si256(a[j], 1));
  return _mm_hadd_epi32(_mm_hadd_epi32(t[0], t[1]), _mm_hadd_epi32(t[2], t[3]));
}

void row_dots_i8_avx2(const int16_t* q, const int8_t* x, size_t rows, size_t d, int64_t* out) {
  const size_t body = d & ~size_t(15);
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const int8_t* xr = x + r * d;
    __m256i sums = _mm256_setzero_si256();  // the four rows' int64 sums
    size_t p = 0;
    while (p < body) {
      const size_t end = std::min(body, p + kI8Block);
      __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
      for (; p < end; p += 16) {
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + p));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + j * d + p)));
          acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(xv, qv));
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
      __m256i acc = _mm256_setzero_si256();
      for (; p < end; p += 16) {
        const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + p)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + p))));
      }
      alignas(32) int32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
      for (const int32_t lane : lanes) s += lane;
    }
    for (; p < d; ++p) s += int32_t(q[p]) * xr[p];
    out[r] = s;
  }
}

// 6 x 16 block of C from packed panels (12 ymm accumulators, 2 loads of B, 6 broadcasts of A).
constexpr size_t kMr = 6;
constexpr size_t kNr = 16;

void gemm_micro_avx2(const float* a, const float* b, size_t k, float* c, size_t ldc, size_t rows, size_t cols,
                     bool accumulate) {
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (size_t i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (size_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * kNr);
    const __m256 b1 = _mm256_loadu_ps(b + p * kNr + 8);
    const float* ap = a + p * kMr;
#pragma GCC unroll 6
    for (size_t i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(ap + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // Unrolled, so every accumulator is named by a constant: with a run-time index GCC kept them in
  // memory and stored all 12 on every step of k, which capped the kernel at half the FMA rate.
#pragma GCC unroll 6
  for (size_t i = 0; i < kMr; ++i) {
    if (i == rows) break;
    float* ci = c + i * ldc;
    if (cols == kNr) {
      __m256 v0 = acc[i][0], v1 = acc[i][1];
      if (accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, v0);
      _mm256_storeu_ps(ci + 8, v1);
    } else {
      float tile[kNr];
      _mm256_storeu_ps(tile, acc[i][0]);
      _mm256_storeu_ps(tile + 8, acc[i][1]);
      for (size_t j = 0; j < cols; ++j) ci[j] = accumulate ? ci[j] + tile[j] : tile[j];
    }
  }
}

// As exp_ps in kernels_avx512.cpp; without scalef, 2^n is built in the exponent field (n is in
// [-126, 127] after the clamp, so it stays a normal float).
inline __m256 exp_ps(__m256 x) {
  // The constant first: min/max return their second operand when either is NaN, so NaN stays NaN.
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

inline __m256 tanh_ps(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.f));
  const __m256 e = exp_ps(_mm256_add_ps(_mm256_andnot_ps(sign, x), _mm256_andnot_ps(sign, x)));
  const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.f), _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, _mm256_set1_ps(1.f))));
  return _mm256_or_ps(t, sign);
}

template <__m256 (*F)(__m256)>
void map_inplace(float* x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, F(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float tail[8] = {};
    std::copy(x + i, x + n, tail);
    _mm256_storeu_ps(tail, F(_mm256_loadu_ps(tail)));
    std::copy(tail, tail + (n - i), x + i);
  }
}

}  // namespace

const IsaKernels* kernels_avx2() {
  static const IsaKernels table{Isa::avx2,         kRows,       kQueries,         gemm_tile_avx2,
                                row_dots_avx2,     axpy_avx2,   sum_squares_avx2, row_dots_i8_avx2,
                                kMr,               kNr,         gemm_micro_avx2, pack_panel<kMr>, pack_panel<kNr, transpose8_avx>,
                                map_inplace<exp_ps>, map_inplace<tanh_ps>, adamw_body};
  return isa_supported(Isa::avx2) ? &table : nullptr;
}

}  // namespace laborspace

#pragma GCC pop_options
#else
namespace laborspace {
const IsaKernels* kernels_avx2() { return nullptr; }
}  // namespace laborspace
#endif
