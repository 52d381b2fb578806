// An 8 x 8 transpose in AVX registers, for packing GEMM operands (gemm_pack.h). Included inside
// the AVX2 and AVX-512 files' target regions; the anonymous namespace keeps the copies apart.
#pragma once
#include <immintrin.h>

#include <cstddef>

namespace laborspace {
namespace {

// out[r*out_ld + i] = src[i*ld + r] for r, i < 8.
void transpose8_avx(const float* src, size_t ld, float* out, size_t out_ld) {
  __m256 r[8], t[8];
#pragma GCC unroll 8
  for (size_t i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
#pragma GCC unroll 4
  for (size_t i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (size_t h = 0; h < 8; h += 4) {
    r[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    r[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    r[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    r[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (size_t i = 0; i < 4; ++i) {
    _mm256_storeu_ps(out + i * out_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(out + (i + 4) * out_ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

}  // namespace
}  // namespace laborspace
