// CUDA exact top-k (see cuda_topk.h). Two kernels per chunk of queries:
//  1. scores: the shared tiled product (cuda_gemm.cuh) S = Q X^T, scaled to cosine when asked,
//     masked rows set to -inf, non-finite scores reported by row;
//  2. select: one block per query; each thread keeps its own sorted best k over a strided slice of
//     the row, then k rounds of a block-wide argmax merge them (ties by ascending row index).
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_gemm.cuh"
#include "cuda_topk.h"
#include "cuda_util.cuh"

namespace laborspace::cuda {
namespace {

constexpr int kSelectThreads = 128;

__global__ void inverse_norms(const float* x, size_t rows, size_t d, float* out) {
  const size_t r = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  double s = 0;
  for (size_t p = 0; p < d; ++p) s += double(x[r * d + p]) * x[r * d + p];
  out[r] = s > 0 ? float(1.0 / sqrt(s)) : 0.f;
}

// Scores: cosine scaling when asked, masked rows to -inf, the first non-finite row flagged.
struct ScoreSink {
  float* s;
  int n;
  const float *q_inv, *x_inv;
  const uint8_t* mask;
  int* bad_row;
  __device__ void operator()(int i, int j, float v) const {
    if (q_inv) v *= q_inv[i] * x_inv[j];
    if (mask && !mask[j]) {
      v = -INFINITY;
    } else if (!isfinite(v)) {
      atomicMin(bad_row, j);
    }
    s[size_t(i) * n + j] = v;
  }
};

__device__ bool better(float s1, int i1, float s2, int i2) { return s1 > s2 || (s1 == s2 && i1 < i2); }

__global__ void select_kernel(const float* s, int n, int k, int* out_idx, float* out_scores) {
  const int q = blockIdx.x, tid = threadIdx.x;
  const float* row = s + size_t(q) * n;
  float best_s[kMaxK];
  int best_i[kMaxK];
  int count = 0;
  // Each thread sees its rows in ascending order, so an equal score loses to the one kept.
  for (int j = tid; j < n; j += kSelectThreads) {
    const float v = row[j];
    if (v == -INFINITY) continue;  // masked out
    if (count == k && !(v > best_s[k - 1])) continue;
    int pos = count < k ? count++ : k - 1;
    while (pos > 0 && better(v, j, best_s[pos - 1], best_i[pos - 1])) {
      best_s[pos] = best_s[pos - 1];
      best_i[pos] = best_i[pos - 1];
      --pos;
    }
    best_s[pos] = v;
    best_i[pos] = j;
  }
  __shared__ float red_s[kSelectThreads];
  __shared__ int red_i[kSelectThreads];
  __shared__ int red_t[kSelectThreads];
  int head = 0;
  for (int r = 0; r < k; ++r) {
    red_s[tid] = head < count ? best_s[head] : -INFINITY;
    red_i[tid] = head < count ? best_i[head] : INT_MAX;
    red_t[tid] = tid;
    __syncthreads();
    for (int stride = kSelectThreads / 2; stride > 0; stride >>= 1) {
      if (tid < stride && better(red_s[tid + stride], red_i[tid + stride], red_s[tid], red_i[tid])) {
        red_s[tid] = red_s[tid + stride];
        red_i[tid] = red_i[tid + stride];
        red_t[tid] = red_t[tid + stride];
      }
      __syncthreads();
    }
    if (tid == 0) {
      out_scores[size_t(q) * k + r] = red_s[0];
      out_idx[size_t(q) * k + r] = red_i[0];
    }
    if (tid == red_t[0]) ++head;
    __syncthreads();
  }
}

}  // namespace

int device_count() {
  static const int count = [] {
    int c = 0;
    return cudaGetDeviceCount(&c) == cudaSuccess ? c : 0;
  }();
  return count;
}

std::string device_name() {
  cudaDeviceProp prop{};
  return cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? std::string(prop.name) : std::string();
}

Error topk(const float* q, size_t m, const float* x, size_t n, size_t d, size_t k, Metric metric,
           const uint8_t* mask, int32_t* out_idx, float* out_scores) {
  if (k == 0 || m == 0) return {};
  if (k > kMaxK) return {Error::bad_argument, "k above " + std::to_string(kMaxK) + " is not supported on CUDA"};
  if (n > size_t(INT_MAX) || d > size_t(INT_MAX)) return {Error::bad_argument, "matrix too large for the CUDA path"};
  try {
    // Score matrices of at most 256 MiB per chunk of queries.
    const size_t chunk = std::max<size_t>(1, std::min(m, (size_t(256) << 20) / (n * sizeof(float))));
    DeviceBuffer<float> dx(n * d), dq(chunk * d), ds(chunk * n), dx_inv(n), dq_inv(chunk), dscore(chunk * k);
    DeviceBuffer<uint8_t> dmask(mask ? n : 0);
    DeviceBuffer<int> dbad(1), didx(chunk * k);
    check(cudaMemcpy(dx.ptr, x, n * d * sizeof(float), cudaMemcpyHostToDevice), "copy database");
    if (mask) check(cudaMemcpy(dmask.ptr, mask, n, cudaMemcpyHostToDevice), "copy mask");
    const bool cosine = metric == Metric::cosine;
    if (cosine) inverse_norms<<<unsigned((n + 255) / 256), 256>>>(dx.ptr, n, d, dx_inv.ptr);
    const int no_bad = INT_MAX;
    check(cudaMemcpy(dbad.ptr, &no_bad, sizeof(int), cudaMemcpyHostToDevice), "reset flag");
    for (size_t q0 = 0; q0 < m; q0 += chunk) {
      const size_t count = std::min(chunk, m - q0);
      check(cudaMemcpy(dq.ptr, q + q0 * d, count * d * sizeof(float), cudaMemcpyHostToDevice), "copy queries");
      if (cosine) inverse_norms<<<unsigned((count + 255) / 256), 256>>>(dq.ptr, count, d, dq_inv.ptr);
      // S = Q X^T: X is stored n x d, so op(B) = X^T is the transposed form.
      launch_product<false, true>(int(count), int(n), int(d), dq.ptr, int(d), dx.ptr, int(d),
                                  ScoreSink{ds.ptr, int(n), cosine ? dq_inv.ptr : nullptr, cosine ? dx_inv.ptr : nullptr,
                                            mask ? dmask.ptr : nullptr, dbad.ptr});
      select_kernel<<<unsigned(count), kSelectThreads>>>(ds.ptr, int(n), int(k), didx.ptr, dscore.ptr);
      check(cudaGetLastError(), "select kernel");
      check(cudaMemcpy(out_idx + q0 * k, didx.ptr, count * k * sizeof(int), cudaMemcpyDeviceToHost), "copy indices");
      check(cudaMemcpy(out_scores + q0 * k, dscore.ptr, count * k * sizeof(float), cudaMemcpyDeviceToHost), "copy scores");
    }
    int bad = INT_MAX;
    check(cudaMemcpy(&bad, dbad.ptr, sizeof(int), cudaMemcpyDeviceToHost), "read flag");
    if (bad != INT_MAX) return describe_bad_row(x, size_t(bad), d);
  } catch (const CudaFailure& f) {
    return {Error::device, "CUDA: " + f.what};
  }
  return {};
}

}  // namespace laborspace::cuda
