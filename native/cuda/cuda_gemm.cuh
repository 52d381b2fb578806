// The tiled product shared by the CUDA kernels: op(A) op(B) in 64 x 64 tiles, 16 deep, 4 x 4
// outputs per thread of a 16 x 16 block, for every transpose form. What happens to each result is
// the caller's epilogue, called as epilogue(i, j, value) for i < m, j < n, so the top-k can scale
// and mask its scores where the training step stores or accumulates.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda_util.cuh"

namespace laborspace::cuda {

constexpr int kGemmTile = 64;
constexpr int kGemmStep = 16;

// op(A) is m x k: A stored m x k (row stride lda), or k x m when TA. op(B) is k x n: B stored k x n
// (ldb), or n x k when TB.
template <bool TA, bool TB, class Epilogue>
__global__ void tiled_product(int m, int n, int k, const float* a, int lda, const float* b, int ldb, Epilogue epilogue) {
  __shared__ float as[kGemmStep][kGemmTile + 1];
  __shared__ float bs[kGemmStep][kGemmTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int i0 = blockIdx.y * kGemmTile, j0 = blockIdx.x * kGemmTile;
  float acc[4][4] = {};
  for (int p0 = 0; p0 < k; p0 += kGemmStep) {
    for (int e = tid; e < kGemmTile * kGemmStep; e += 256) {
      // Consecutive threads read consecutive addresses of whichever layout the operand has.
      const int r = TA ? e % kGemmTile : e / kGemmStep, q = TA ? e / kGemmTile : e % kGemmStep;
      const int i = i0 + r, p = p0 + q;
      as[q][r] = (i < m && p < k) ? (TA ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p]) : 0.f;
      const int cb = TB ? e / kGemmStep : e % kGemmTile, qb = TB ? e % kGemmStep : e / kGemmTile;
      const int j = j0 + cb, pb = p0 + qb;
      bs[qb][cb] = (j < n && pb < k) ? (TB ? b[size_t(j) * ldb + pb] : b[size_t(pb) * ldb + j]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmStep; ++kk) {
      float ra[4], rb[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) ra[r] = as[kk][ty + 16 * r];
#pragma unroll
      for (int q = 0; q < 4; ++q) rb[q] = bs[kk][tx + 16 * q];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[r][q] = fmaf(ra[r], rb[q], acc[r][q]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = i0 + ty + 16 * r, j = j0 + tx + 16 * q;
      if (i < m && j < n) epilogue(i, j, acc[r][q]);
    }
}

template <bool TA, bool TB, class Epilogue>
void launch_product(int m, int n, int k, const float* a, int lda, const float* b, int ldb, Epilogue epilogue) {
  const dim3 grid(unsigned((n + kGemmTile - 1) / kGemmTile), unsigned((m + kGemmTile - 1) / kGemmTile));
  tiled_product<TA, TB><<<grid, dim3(16, 16)>>>(m, n, k, a, lda, b, ldb, epilogue);
  check(cudaGetLastError(), "product kernel");
}

}  // namespace laborspace::cuda
