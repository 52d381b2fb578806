// CUDA training step (see cuda_training.h). The products run through the shared tiled kernel
// (cuda_gemm.cuh) for every transpose form; the row-wise parts (the head's
// tanh and normalisation and its backward, the softmax of MNRL, the per-pair dots) run one block per
// row with shared-memory reductions. Per-row losses come back to the host and are summed in double
// there, so the loss matches the CPU path's order of magnitude of rounding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_rows.cuh"
#include "cuda_training.h"
#include "cuda_util.cuh"

namespace laborspace::cuda {
namespace {

// MNRL, one block per row of S (or of S^T when by_column): the softmax over scale * S, its
// cross-entropy against the diagonal into row_loss, and its gradient added into ds.
__global__ void mnrl_rows(const float* s, int batch, float scale, float weight, bool by_column, float* ds, float* row_loss) {
  __shared__ float scratch[kRowThreads];
  const int i = blockIdx.x;
  auto at = [&](int j) { return by_column ? size_t(j) * batch + i : size_t(i) * batch + j; };
  float top = -INFINITY;
  for (int j = threadIdx.x; j < batch; j += kRowThreads) top = fmaxf(top, scale * s[at(j)]);
  top = block_max(top, scratch);
  float sum = 0;
  for (int j = threadIdx.x; j < batch; j += kRowThreads) sum += expf(scale * s[at(j)] - top);
  sum = block_sum(sum, scratch);
  for (int j = threadIdx.x; j < batch; j += kRowThreads)
    ds[at(j)] += weight * scale * (expf(scale * s[at(j)] - top) / sum - (i == j ? 1.f : 0.f));
  if (threadIdx.x == 0) row_loss[i] = weight * (top + logf(sum) - scale * s[at(i)]);
}

// out[i] = a_i . b_i: one block per row.
__global__ void row_dots(const float* a, const float* b, int d, float* out) {
  __shared__ float scratch[kRowThreads];
  const size_t o = size_t(blockIdx.x) * d;
  float s = 0;
  for (int p = threadIdx.x; p < d; p += kRowThreads) s += a[o + p] * b[o + p];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// out_i (+)= coef_i * src_i: the gradients that are per-row multiples of another side.
__global__ void scaled_rows(const float* coef, const float* src, int d, bool accumulate, float* out) {
  const size_t o = size_t(blockIdx.x) * d;
  for (int p = threadIdx.x; p < d; p += kRowThreads) out[o + p] = coef[blockIdx.x] * src[o + p] + (accumulate ? out[o + p] : 0.f);
}

// CoSENT pair terms: t_ij = exp(scale (cos_j - cos_i) - top) where target_i > target_j, else 0,
// and their row sums: one block per i.
__global__ void cosent_terms(const float* cos, const float* target, int batch, float scale, float top, float* terms,
                             float* row_sums) {
  __shared__ float scratch[kRowThreads];
  const int i = blockIdx.x;
  float s = 0;
  for (int j = threadIdx.x; j < batch; j += kRowThreads) {
    const float t = target[i] > target[j] ? expf(scale * (cos[j] - cos[i]) - top) : 0.f;
    terms[size_t(i) * batch + j] = t;
    s += t;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) row_sums[i] = s;
}

// dcos_k = (sum_i t_ik - sum_j t_kj) * factor: one block per k.
__global__ void cosent_dcos(const float* terms, int batch, float factor, float* dcos) {
  __shared__ float scratch[kRowThreads];
  const int k = blockIdx.x;
  float s = 0;
  for (int i = threadIdx.x; i < batch; i += kRowThreads) s += terms[size_t(i) * batch + k] - terms[size_t(k) * batch + i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) dcos[k] = s * factor;
}

std::vector<float> to_host(const float* d, size_t n) {
  std::vector<float> h(n);
  check(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), "copy to host");
  return h;
}

// The step's device buffers, kept between steps (a run takes thousands at the same shapes) and one
// set per calling thread, since steps may run on several threads at once.
struct HeadStepBuffers {
  KeptBuffer<float> x, w, b, h, e, ge, gz, gw, gb, work, ds, vec, t, down, up, mid, u, gmid, gdown, gup;
};

HeadStepBuffers& head_step_buffers() {
  thread_local HeadStepBuffers kept;
  return kept;
}

}  // namespace

Error head_loss_step(Loss loss, const float* x, size_t batch, size_t din, const float* wt, const float* bias,
                     size_t dout, const Adapter& adapter, const LossParams& params, double* loss_out,
                     const HeadGrads& grads) {
  const size_t sides = loss_sides(loss), rows = sides * batch, side = batch * dout, rank = adapter.rank;
  if (rows > size_t(INT32_MAX) / 2 || din > size_t(INT32_MAX) / 2 || dout > size_t(INT32_MAX) / 2)
    return {Error::bad_argument, "batch too large for the CUDA path"};
  const int B = int(batch), R = int(rows), Din = int(din), Dout = int(dout), Rank = int(rank);
  try {
    HeadStepBuffers& kept = head_step_buffers();
    float *dx = kept.x.sized(rows * din), *dw = kept.w.sized(dout * din), *db = kept.b.sized(dout);
    float *dh = kept.h.sized(rows * dout), *de = kept.e.sized(rows * dout), *dge = kept.ge.sized(rows * dout);
    float *dgz = kept.gz.sized(rows * dout), *dgw = kept.gw.sized(dout * din), *dgb = kept.gb.sized(dout);
    float *dwork = kept.work.sized(batch * batch), *dvec = kept.vec.sized(4 * batch), *dt = kept.t.sized(batch);
    // The adapter: its weights, h down^T (kept for the backward pass), u, and the gradients.
    float *ddown = kept.down.sized(rank * dout), *dup = kept.up.sized(dout * rank), *dmid = kept.mid.sized(rows * rank);
    float *du = kept.u.sized(rank ? rows * dout : 0), *dgmid = kept.gmid.sized(rows * rank);
    float *dgdown = kept.gdown.sized(rank * dout), *dgup = kept.gup.sized(dout * rank);
    check(cudaMemcpy(dx, x, rows * din * sizeof(float), cudaMemcpyHostToDevice), "copy x");
    check(cudaMemcpy(dw, wt, dout * din * sizeof(float), cudaMemcpyHostToDevice), "copy weight");
    check(cudaMemcpy(db, bias, dout * sizeof(float), cudaMemcpyHostToDevice), "copy bias");
    if (params.targets) check(cudaMemcpy(dt, params.targets, batch * sizeof(float), cudaMemcpyHostToDevice), "copy targets");
    // Forward: h = tanh(x W^T + bias), u = h (+ the adapter), e = u / |u|.
    gemm<false, true>(R, Dout, Din, dx, Din, dw, Din, dh, Dout);
    tanh_bias<<<R, kRowThreads>>>(dh, db, Dout);
    check(cudaGetLastError(), "head tanh");
    const float* u = dh;
    if (rank) {
      check(cudaMemcpy(ddown, adapter.down, rank * dout * sizeof(float), cudaMemcpyHostToDevice), "copy adapter");
      check(cudaMemcpy(dup, adapter.up, dout * rank * sizeof(float), cudaMemcpyHostToDevice), "copy adapter");
      gemm<false, true>(R, Rank, Dout, dh, Dout, ddown, Dout, dmid, Rank);  // mid = h down^T
      check(cudaMemcpy(du, dh, rows * dout * sizeof(float), cudaMemcpyDeviceToDevice), "copy h");
      gemm<false, true>(R, Dout, Rank, dmid, Rank, dup, Rank, du, Dout, true);  // u = h + mid up^T
      u = du;
    }
    normalize_rows<<<R, kRowThreads>>>(u, Dout, de);
    check(cudaGetLastError(), "head normalisation");
    const float *ea = de, *ep = de + side, *en = de + 2 * side;
    float *ga = dge, *gp = dge + side, *gn = dge + 2 * side;
    float* v0 = dvec;  // per-row scratch vectors, batch floats each
    float* v1 = dvec + batch;
    float* v2 = dvec + 2 * batch;
    double value = 0;
    switch (loss) {
      case Loss::mnrl: {
        gemm<false, true>(B, B, Dout, ea, Dout, ep, Dout, dwork, B);  // S = A P^T
        float* ds = kept.ds.sized(batch * batch);
        check(cudaMemset(ds, 0, batch * batch * sizeof(float)), "clear dS");
        mnrl_rows<<<B, kRowThreads>>>(dwork, B, params.scale, 1.f / float(B), false, ds, v0);
        check(cudaGetLastError(), "mnrl kernel");
        for (float l : to_host(v0, batch)) value += l;
        gemm<false, false>(B, Dout, B, ds, B, ep, Dout, ga, Dout);  // dA = dS P
        gemm<true, false>(B, Dout, B, ds, B, ea, Dout, gp, Dout);   // dP = dS^T A
        break;
      }
      case Loss::triplet: {
        row_dots<<<B, kRowThreads>>>(ea, ep, Dout, v0);
        row_dots<<<B, kRowThreads>>>(ea, en, Dout, v1);
        check(cudaGetLastError(), "row dots");
        const std::vector<float> ap = to_host(v0, batch), an = to_host(v1, batch);
        // Cosine distance: loss_i = max(0, a.n - a.p + margin); ga = (n - p) / B, gp = -a / B, gn = a / B.
        std::vector<float> cp(batch), cn(batch);
        for (size_t i = 0; i < batch; ++i) {
          const double v = double(an[i]) - ap[i] + params.margin;
          if (v > 0) value += v / double(batch);
          cp[i] = v > 0 ? -1.f / float(batch) : 0.f;
          cn[i] = v > 0 ? 1.f / float(batch) : 0.f;
        }
        check(cudaMemcpy(v0, cp.data(), batch * sizeof(float), cudaMemcpyHostToDevice), "copy coefficients");
        check(cudaMemcpy(v1, cn.data(), batch * sizeof(float), cudaMemcpyHostToDevice), "copy coefficients");
        scaled_rows<<<B, kRowThreads>>>(v0, ep, Dout, false, ga);
        scaled_rows<<<B, kRowThreads>>>(v1, en, Dout, true, ga);
        scaled_rows<<<B, kRowThreads>>>(v0, ea, Dout, false, gp);
        scaled_rows<<<B, kRowThreads>>>(v1, ea, Dout, false, gn);
        break;
      }
      case Loss::cosine_mse:
      case Loss::cosent: {
        row_dots<<<B, kRowThreads>>>(ea, ep, Dout, v0);
        check(cudaGetLastError(), "row dots");
        const std::vector<float> cos = to_host(v0, batch);
        std::vector<float> coef(batch);
        if (loss == Loss::cosine_mse) {
          // loss = mean (cos_i - t_i)^2; dL/dcos_i = 2 (cos_i - t_i) / B.
          for (size_t i = 0; i < batch; ++i) {
            const double diff = double(cos[i]) - params.targets[i];
            value += diff * diff / double(batch);
            coef[i] = float(2.0 * diff / double(batch));
          }
        } else {
          // log(1 + sum of pair terms) with the largest exponent taken out (found here, B^2 compares).
          float top = 0;
          for (size_t i = 0; i < batch; ++i)
            for (size_t j = 0; j < batch; ++j)
              if (params.targets[i] > params.targets[j]) top = std::max(top, params.scale * (cos[j] - cos[i]));
          cosent_terms<<<B, kRowThreads>>>(v0, dt, B, params.scale, top, dwork, v1);
          check(cudaGetLastError(), "cosent terms");
          double sum = std::exp(-double(top));
          for (float r : to_host(v1, batch)) sum += r;
          value = double(top) + std::log(sum);
          cosent_dcos<<<B, kRowThreads>>>(dwork, B, float(params.scale / sum), v2);
          check(cudaGetLastError(), "cosent gradient");
          coef = to_host(v2, batch);
        }
        check(cudaMemcpy(v2, coef.data(), batch * sizeof(float), cudaMemcpyHostToDevice), "copy coefficients");
        scaled_rows<<<B, kRowThreads>>>(v2, ep, Dout, false, ga);
        scaled_rows<<<B, kRowThreads>>>(v2, ea, Dout, false, gp);
        break;
      }
    }
    *loss_out = value;
    // Backward: dL/du, through the adapter to dL/dh, through tanh to dL/dz, then dW = dz^T x and
    // dbias = column sums of dz.
    head_grad_u<<<R, kRowThreads>>>(u, de, dge, Dout, params.weight, dgz);
    check(cudaGetLastError(), "head backward");
    if (rank) {
      gemm<true, false>(Dout, Rank, R, dgz, Dout, dmid, Rank, dgup, Rank);        // d up = gu^T mid
      gemm<false, false>(R, Rank, Dout, dgz, Dout, dup, Rank, dgmid, Rank);       // d mid = gu up
      gemm<true, false>(Rank, Dout, R, dgmid, Rank, dh, Dout, dgdown, Dout);      // d down = dmid^T h
      gemm<false, false>(R, Dout, Rank, dgmid, Rank, ddown, Dout, dgz, Dout, true);  // dh = gu + dmid down
      check(cudaMemcpy(grads.up, dgup, dout * rank * sizeof(float), cudaMemcpyDeviceToHost), "copy d up");
      check(cudaMemcpy(grads.down, dgdown, rank * dout * sizeof(float), cudaMemcpyDeviceToHost), "copy d down");
    }
    if (grads.wt) {
      tanh_grad<<<R, kRowThreads>>>(dh, Dout, dgz);
      check(cudaGetLastError(), "tanh backward");
      gemm<true, false>(Dout, Din, R, dgz, Dout, dx, Din, dgw, Din);
      column_sums<<<unsigned((dout + 255) / 256), 256>>>(dgz, R, Dout, dgb);
      check(cudaGetLastError(), "bias gradient");
      check(cudaMemcpy(grads.wt, dgw, dout * din * sizeof(float), cudaMemcpyDeviceToHost), "copy dW");
      check(cudaMemcpy(grads.bias, dgb, dout * sizeof(float), cudaMemcpyDeviceToHost), "copy dbias");
    }
  } catch (const CudaFailure& f) {
    return {Error::device, "CUDA: " + f.what};
  }
  return {};
}

}  // namespace laborspace::cuda
