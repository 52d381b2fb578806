// Machine probes for the benchmarks' bounds: streaming read bandwidth and fp32 FMA throughput.
// Written independently of the scoring kernels so the bound is not defined by what we measure.
#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace laborspace {
namespace {

using Clock = std::chrono::steady_clock;

#if defined(__x86_64__) || defined(_M_X64)
#define LABORSPACE_X86_PROBES 1  // other CPUs have the scalar read only
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
float read_sum_avx2(const float* x, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(x + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(x + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return lanes[0] + lanes[7];
}

// 10 independent chains hide the FMA latency on every current x86 core.
float fma_loop_avx2(size_t iters) {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1.f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
  for (size_t it = 0; it < iters; ++it)
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  alignas(32) float lanes[8];
  __m256 s = a[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, a[i]);
  _mm256_store_ps(lanes, s);
  return lanes[0];
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's reduce intrinsic, as in kernels_avx512.cpp
float read_sum_avx512(const float* x, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(x + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(x + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float fma_loop_avx512(size_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  for (size_t it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
#pragma GCC pop_options
#endif

float read_sum_scalar(const float* x, size_t n) {
  float s[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += x[i + j];
  return s[0] + s[7];
}

volatile float sink_value;

}  // namespace

double probe_read_bandwidth(const float* x, size_t len, size_t threads) {
  threads = std::max<size_t>(1, threads);
  const Isa isa = active_kernels().isa;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    fork_join(threads, [&](size_t t) {
      const float* part = x + len * t / threads;
      const size_t n = len * (t + 1) / threads - len * t / threads;
#ifdef LABORSPACE_X86_PROBES
      sink_value = isa == Isa::avx512 ? read_sum_avx512(part, n)
                   : isa == Isa::avx2 ? read_sum_avx2(part, n)
                                      : read_sum_scalar(part, n);
#else
      (void)isa;
      sink_value = read_sum_scalar(part, n);
#endif
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, double(len) * sizeof(float) / s);
  }
  return best;
}

double probe_fma_peak(size_t threads) {
#ifndef LABORSPACE_X86_PROBES
  (void)threads;
  return 0;  // no x86 FMA unit to measure
#else
  threads = std::max<size_t>(1, threads);
  const bool avx512 = active_kernels().isa == Isa::avx512;
  const bool avx2 = isa_supported(Isa::avx2);
  if (!avx2) return 0;  // no FMA unit to measure
  const size_t iters = 20'000'000;
  const double flop_per_iter = avx512 ? 12 * 16 * 2 : 10 * 8 * 2;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    fork_join(threads, [&](size_t) { sink_value = avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters); });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, flop_per_iter * iters * threads / s);
  }
  return best;
#endif
}

}  // namespace laborspace
