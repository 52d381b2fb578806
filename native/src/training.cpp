// Training kernels (see training.h). Loss formulas follow the sentence-transformers losses of the
// same names; the gradients are derived by hand and checked against finite differences in tests.
#include "training.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "parallel.h"

namespace laborspace {
namespace {

double dot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t p = 0; p < d; ++p) s += double(a[p]) * b[p];
  return s;
}

// Rows [0, n) split over the threads the work is worth.
template <class Fn>
void for_rows(size_t n, double work_per_row, Fn&& fn) {
  const size_t threads = std::max<size_t>(1, std::min(n, threads_for(double(n) * work_per_row)));
  fork_join(threads, [&](size_t t) {
    for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) fn(i);
  });
}

}  // namespace

Error head_forward(const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout, float* h,
                   float* e) {
  gemm(Op::none, Op::transpose, batch, dout, din, x, din, wt, din, h, dout, false);
  const IsaKernels& k = active_kernels();
  for_rows(batch, 40.0 * dout, [&](size_t i) {
    float* hi = h + i * dout;
    for (size_t j = 0; j < dout; ++j) hi[j] += bias[j];
    k.tanh_inplace(hi, dout);
    const double sq = k.sum_squares(hi, dout);
    const float inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.f;
    for (size_t j = 0; j < dout; ++j) e[i * dout + j] = hi[j] * inv;
  });
  const size_t bad = first_non_finite(h, batch * dout);
  if (bad < batch * dout)
    return {Error::non_finite, "the head's pre-activation of row " + std::to_string(bad / dout) + " is not finite (NaN from overflowing inputs)"};
  return {};
}

Error head_backward(const float* x, const float* h, const float* e, const float* grad_e, size_t batch, size_t din,
                    size_t dout, float* grad_wt, float* grad_bias) {
  // dL/dz for z = x W^T + bias: through the normalisation (project out e, divide by |h|), then tanh.
  const IsaKernels& k = active_kernels();
  std::vector<float> gz(batch * dout);
  for_rows(batch, 10.0 * dout, [&](size_t i) {
    const float* hi = h + i * dout;
    const float* ei = e + i * dout;
    const float* gi = grad_e + i * dout;
    const double norm = std::sqrt(k.sum_squares(hi, dout));
    const float inv = norm > 0 ? float(1.0 / norm) : 0.f;
    const float eg = float(dot(ei, gi, dout));
    for (size_t j = 0; j < dout; ++j) gz[i * dout + j] = (gi[j] - ei[j] * eg) * inv * (1.f - hi[j] * hi[j]);
  });
  std::fill(grad_bias, grad_bias + dout, 0.f);
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < dout; ++j) grad_bias[j] += gz[i * dout + j];
  gemm(Op::transpose, Op::none, dout, din, batch, gz.data(), dout, x, din, grad_wt, din, false);
  return {};
}

double mnrl_loss(const float* a, const float* p, size_t batch, size_t d, float scale, bool symmetric, float* grad_a,
                 float* grad_p) {
  const size_t B = batch;
  const IsaKernels& k = active_kernels();
  std::vector<float> s(B * B);
  gemm(Op::none, Op::transpose, B, B, d, a, d, p, d, s.data(), B, false);
  for (float& v : s) v *= scale;
  // dS accumulates dL/dS: the softmax over each row (a_i against every p_j) and, when symmetric,
  // over each column (p_j against every a_i), done as rows of S^T.
  std::vector<float> ds(B * B, 0.f), t(B);
  const float weight = symmetric ? 0.5f / float(B) : 1.f / float(B);
  double loss = 0;
  auto row_softmax = [&](const std::vector<float>& scores, std::vector<float>& grad) {
    for (size_t i = 0; i < B; ++i) {
      const float* si = scores.data() + i * B;
      const float top = *std::max_element(si, si + B);
      for (size_t j = 0; j < B; ++j) t[j] = si[j] - top;
      k.exp_inplace(t.data(), B);
      double sum = 0;
      for (size_t j = 0; j < B; ++j) sum += t[j];
      loss += weight * (double(top) + std::log(sum) - si[i]);
      const float w = float(weight / sum);
      float* gi = grad.data() + i * B;
      for (size_t j = 0; j < B; ++j) gi[j] += w * t[j];
      gi[i] -= weight;
    }
  };
  row_softmax(s, ds);
  if (symmetric) {
    std::vector<float> st(B * B), dst(B * B, 0.f);
    for (size_t i = 0; i < B; ++i)
      for (size_t j = 0; j < B; ++j) st[j * B + i] = s[i * B + j];
    row_softmax(st, dst);
    for (size_t i = 0; i < B; ++i)
      for (size_t j = 0; j < B; ++j) ds[i * B + j] += dst[j * B + i];
  }
  for (float& v : ds) v *= scale;
  gemm(Op::none, Op::none, B, d, B, ds.data(), B, p, d, grad_a, d, false);       // dL/dA = dS P
  gemm(Op::transpose, Op::none, B, d, B, ds.data(), B, a, d, grad_p, d, false);  // dL/dP = dS^T A
  return loss;
}

double triplet_loss(const float* a, const float* p, const float* n, size_t batch, size_t d, float margin, bool euclidean,
                    float* grad_a, float* grad_p, float* grad_n) {
  double loss = 0;
  const double inv_b = 1.0 / double(batch);
  for (size_t i = 0; i < batch; ++i) {
    const float *ai = a + i * d, *pi = p + i * d, *ni = n + i * d;
    float *ga = grad_a + i * d, *gp = grad_p + i * d, *gn = grad_n + i * d;
    std::fill(ga, ga + d, 0.f);
    std::fill(gp, gp + d, 0.f);
    std::fill(gn, gn + d, 0.f);
    if (euclidean) {
      double dp = 0, dn = 0;
      for (size_t k = 0; k < d; ++k) {
        dp += double(ai[k] - pi[k]) * (ai[k] - pi[k]);
        dn += double(ai[k] - ni[k]) * (ai[k] - ni[k]);
      }
      dp = std::sqrt(dp);
      dn = std::sqrt(dn);
      const double v = dp - dn + margin;
      if (v <= 0) continue;
      loss += v * inv_b;
      for (size_t k = 0; k < d; ++k) {
        const double up = dp > 0 ? (ai[k] - pi[k]) / dp : 0.0;
        const double un = dn > 0 ? (ai[k] - ni[k]) / dn : 0.0;
        ga[k] = float((up - un) * inv_b);
        gp[k] = float(-up * inv_b);
        gn[k] = float(un * inv_b);
      }
    } else {
      // (1 - a.p) - (1 - a.n) + margin = a.n - a.p + margin
      const double v = dot(ai, ni, d) - dot(ai, pi, d) + margin;
      if (v <= 0) continue;
      loss += v * inv_b;
      for (size_t k = 0; k < d; ++k) {
        ga[k] = float((ni[k] - pi[k]) * inv_b);
        gp[k] = float(-ai[k] * inv_b);
        gn[k] = float(ai[k] * inv_b);
      }
    }
  }
  return loss;
}

double cosine_mse_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float* grad_a,
                       float* grad_b) {
  double loss = 0;
  for (size_t i = 0; i < batch; ++i) {
    const double diff = dot(a + i * d, b + i * d, d) - target[i];
    loss += diff * diff / double(batch);
    const double g = 2.0 * diff / double(batch);
    for (size_t k = 0; k < d; ++k) {
      grad_a[i * d + k] = float(g * b[i * d + k]);
      grad_b[i * d + k] = float(g * a[i * d + k]);
    }
  }
  return loss;
}

double cosent_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float scale,
                   float* grad_a, float* grad_b) {
  const IsaKernels& k = active_kernels();
  std::vector<float> cos(batch);
  for (size_t i = 0; i < batch; ++i) cos[i] = float(dot(a + i * d, b + i * d, d));
  // log(1 + sum exp(x_ij)) over ordered pairs (target_i > target_j), x_ij = scale * (cos_j - cos_i),
  // with the largest term taken out; the terms of each row are exponentiated as one vector and
  // pairs that do not count are zeroed after.
  float top = 0;  // the "1" is exp(0)
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < batch; ++j)
      if (target[i] > target[j]) top = std::max(top, scale * (cos[j] - cos[i]));
  std::vector<float> terms(batch * batch);
  double sum = std::exp(-double(top));
  for (size_t i = 0; i < batch; ++i) {
    float* ti = terms.data() + i * batch;
    for (size_t j = 0; j < batch; ++j) ti[j] = scale * (cos[j] - cos[i]) - top;
    k.exp_inplace(ti, batch);
    for (size_t j = 0; j < batch; ++j) {
      if (!(target[i] > target[j])) ti[j] = 0.f;
      sum += ti[j];
    }
  }
  std::vector<double> dcos(batch, 0.0);
  const double w = scale / sum;
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < batch; ++j) {
      const double g = terms[i * batch + j] * w;
      dcos[j] += g;
      dcos[i] -= g;
    }
  for (size_t i = 0; i < batch; ++i)
    for (size_t p = 0; p < d; ++p) {
      grad_a[i * d + p] = float(dcos[i] * b[i * d + p]);
      grad_b[i * d + p] = float(dcos[i] * a[i * d + p]);
    }
  return double(top) + std::log(sum);
}

Error head_loss_step(Loss loss, const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout,
                     const LossParams& params, double* loss_out, float* grad_wt, float* grad_bias) {
  const size_t rows = loss_sides(loss) * batch, side = batch * dout;
  std::vector<float> h(rows * dout), e(rows * dout), grad(rows * dout);
  if (Error err = head_forward(x, rows, din, wt, bias, dout, h.data(), e.data())) return err;
  const float* ea = e.data();
  float* ga = grad.data();
  switch (loss) {
    case Loss::mnrl: *loss_out = mnrl_loss(ea, ea + side, batch, dout, params.scale, false, ga, ga + side); break;
    case Loss::triplet:
      *loss_out = triplet_loss(ea, ea + side, ea + 2 * side, batch, dout, params.margin, false, ga, ga + side, ga + 2 * side);
      break;
    case Loss::cosine_mse: *loss_out = cosine_mse_loss(ea, ea + side, params.targets, batch, dout, ga, ga + side); break;
    case Loss::cosent: *loss_out = cosent_loss(ea, ea + side, params.targets, batch, dout, params.scale, ga, ga + side); break;
  }
  if (params.weight != 1.f)
    for (float& g : grad) g *= params.weight;
  return head_backward(x, h.data(), e.data(), grad.data(), rows, din, dout, grad_wt, grad_bias);
}

void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int step) {
  // As PyTorch's AdamW: decay first, then the bias-corrected step (the corrections computed once).
  // The ISA's loop (adamw_body.h), split over threads.
  const float step_size = float(lr / (1.0 - std::pow(double(beta1), step)));
  const float inv_c2 = float(1.0 / std::sqrt(1.0 - std::pow(double(beta2), step)));
  const float decay = 1.f - lr * weight_decay;
  const IsaKernels& k = active_kernels();
  const size_t threads = std::max<size_t>(1, threads_for(double(n) * 16));
  fork_join(threads, [&](size_t t) {
    const size_t b = n * t / threads, e = n * (t + 1) / threads;
    k.adamw(param + b, grad + b, m + b, v + b, e - b, beta1, beta2, eps, decay, step_size, inv_c2);
  });
}

}  // namespace laborspace
