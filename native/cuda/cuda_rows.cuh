// Row kernels and the product wrapper shared by the CUDA training files (cuda_training.cu,
// cuda_encoder.cu): one block of kRowThreads threads per row, with shared-memory reductions.
// Defined in an anonymous namespace, so each file gets its own copy (no relocatable device code).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda_gemm.cuh"

namespace laborspace::cuda {
namespace {

constexpr int kRowThreads = 256;

// Stores (or adds) each result into a row-major C.
struct Store {
  float* c;
  int ldc;
  bool accumulate;
  __device__ void operator()(int i, int j, float v) const {
    float& out = c[size_t(i) * ldc + j];
    out = accumulate ? out + v : v;
  }
};

// C (m x n, ldc) = op(A) op(B), as gemm in kernels.h.
template <bool TA, bool TB>
void gemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc, bool accumulate = false) {
  launch_product<TA, TB>(m, n, k, a, lda, b, ldb, Store{c, ldc, accumulate});
}

// Block-wide sum of one value per thread (kRowThreads threads); every thread gets the total.
__device__ float block_sum(float v, float* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  const float total = scratch[0];
  __syncthreads();
  return total;
}

__device__ float block_max(float v, float* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) scratch[threadIdx.x] = fmaxf(scratch[threadIdx.x], scratch[threadIdx.x + stride]);
    __syncthreads();
  }
  const float top = scratch[0];
  __syncthreads();
  return top;
}

// h = tanh(h + bias) in place: one block per row.
__global__ void tanh_bias(float* h, const float* bias, int dout) {
  float* hi = h + size_t(blockIdx.x) * dout;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) hi[j] = tanhf(hi[j] + bias[j]);
}

// e = u / |u| (zero rows stay zero): one block per row.
__global__ void normalize_rows(const float* u, int dout, float* e) {
  __shared__ float scratch[kRowThreads];
  const size_t o = size_t(blockIdx.x) * dout;
  float sq = 0;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) sq += u[o + j] * u[o + j];
  const float total = block_sum(sq, scratch);
  const float inv = total > 0 ? rsqrtf(total) : 0.f;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) e[o + j] = u[o + j] * inv;
}

// dL/du from dL/de through the normalisation, times the loss weight: one block per row.
__global__ void head_grad_u(const float* u, const float* e, const float* ge, int dout, float weight, float* gu) {
  __shared__ float scratch[kRowThreads];
  const size_t o = size_t(blockIdx.x) * dout;
  float sq = 0, eg = 0;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) {
    sq += u[o + j] * u[o + j];
    eg += e[o + j] * ge[o + j];
  }
  const float norm = sqrtf(block_sum(sq, scratch));
  const float dot = block_sum(eg, scratch);
  const float inv = norm > 0 ? weight / norm : 0.f;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) gu[o + j] = (ge[o + j] - e[o + j] * dot) * inv;
}

// g *= 1 - h^2 (through tanh): one block per row.
__global__ void tanh_grad(const float* h, int dout, float* g) {
  const size_t o = size_t(blockIdx.x) * dout;
  for (int j = threadIdx.x; j < dout; j += kRowThreads) g[o + j] *= 1.f - h[o + j] * h[o + j];
}

// Column sums of an r x c matrix: the bias gradient.
__global__ void column_sums(const float* x, int r, int c, float* out) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= c) return;
  float s = 0;
  for (int i = 0; i < r; ++i) s += x[size_t(i) * c + j];
  out[j] = s;
}

}  // namespace
}  // namespace laborspace::cuda
