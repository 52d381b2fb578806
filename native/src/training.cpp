// Training kernels (see training.h). Loss formulas follow the sentence-transformers losses of the
// same names; the gradients are derived by hand and checked against finite differences in tests.
#include "training.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace laborspace {
namespace {

// Row-major transpose of an r x c matrix.
std::vector<float> transpose(const float* x, size_t r, size_t c) {
  std::vector<float> t(r * c);
  for (size_t i = 0; i < r; ++i)
    for (size_t j = 0; j < c; ++j) t[j * r + i] = x[i * c + j];
  return t;
}

double dot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t p = 0; p < d; ++p) s += double(a[p]) * b[p];
  return s;
}

}  // namespace

Error head_forward(const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout, float* h,
                   float* e) {
  if (Error err = similarity(x, batch, wt, dout, din, Metric::dot, h)) return err;
  for (size_t i = 0; i < batch; ++i) {
    double sq = 0;
    for (size_t j = 0; j < dout; ++j) {
      const float t = std::tanh(h[i * dout + j] + bias[j]);
      h[i * dout + j] = t;
      sq += double(t) * t;
    }
    const float inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.f;
    for (size_t j = 0; j < dout; ++j) e[i * dout + j] = h[i * dout + j] * inv;
  }
  return {};
}

Error head_backward(const float* x, const float* h, const float* e, const float* grad_e, size_t batch, size_t din,
                    size_t dout, float* grad_wt, float* grad_bias) {
  // dL/dz for z = x W^T + bias: through the normalisation (project out e, divide by |h|), then tanh.
  std::vector<float> gz(batch * dout);
  for (size_t i = 0; i < batch; ++i) {
    const float* hi = h + i * dout;
    const float* ei = e + i * dout;
    const float* gi = grad_e + i * dout;
    double norm = 0;
    for (size_t j = 0; j < dout; ++j) norm += double(hi[j]) * hi[j];
    norm = std::sqrt(norm);
    const double eg = dot(ei, gi, dout);
    for (size_t j = 0; j < dout; ++j) {
      const double gh = norm > 0 ? (gi[j] - ei[j] * eg) / norm : 0.0;
      gz[i * dout + j] = float(gh * (1.0 - double(hi[j]) * hi[j]));
    }
  }
  std::fill(grad_bias, grad_bias + dout, 0.f);
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < dout; ++j) grad_bias[j] += gz[i * dout + j];
  // grad_wt (dout x din) = gz^T x: rows of gz^T against rows of x^T.
  const std::vector<float> gzt = transpose(gz.data(), batch, dout);
  const std::vector<float> xt = transpose(x, batch, din);
  return similarity(gzt.data(), dout, xt.data(), din, batch, Metric::dot, grad_wt);
}

double mnrl_loss(const float* a, const float* p, size_t batch, size_t d, float scale, bool symmetric, float* grad_a,
                 float* grad_p) {
  const size_t B = batch;
  std::vector<float> s(B * B);
  similarity(a, B, p, B, d, Metric::dot, s.data());
  for (float& v : s) v *= scale;
  // dS accumulates dL/dS; rows: a_i against every p_j, columns (symmetric): p_j against every a_i.
  std::vector<float> ds(B * B, 0.f);
  const double weight = symmetric ? 0.5 / double(B) : 1.0 / double(B);
  double loss = 0;
  auto cross_entropy = [&](bool by_column) {
    for (size_t i = 0; i < B; ++i) {
      auto at = [&](size_t j) -> size_t { return by_column ? j * B + i : i * B + j; };
      double top = -INFINITY;
      for (size_t j = 0; j < B; ++j) top = std::max(top, double(s[at(j)]));
      double sum = 0;
      for (size_t j = 0; j < B; ++j) sum += std::exp(double(s[at(j)]) - top);
      loss += weight * (top + std::log(sum) - s[at(i)]);
      for (size_t j = 0; j < B; ++j) ds[at(j)] += float(weight * (std::exp(double(s[at(j)]) - top) / sum - (i == j ? 1.0 : 0.0)));
    }
  };
  cross_entropy(false);
  if (symmetric) cross_entropy(true);
  for (float& v : ds) v *= scale;
  // grad_a = dS P, grad_p = dS^T A, as Q X^T products with the second operand transposed.
  const std::vector<float> pt = transpose(p, B, d), at = transpose(a, B, d), dst = transpose(ds.data(), B, B);
  similarity(ds.data(), B, pt.data(), d, B, Metric::dot, grad_a);
  similarity(dst.data(), B, at.data(), d, B, Metric::dot, grad_p);
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
  std::vector<double> cos(batch), dcos(batch, 0.0);
  for (size_t i = 0; i < batch; ++i) cos[i] = dot(a + i * d, b + i * d, d);
  // log(1 + sum exp(x_ij)) with x_ij = scale * (cos_j - cos_i), computed with the largest term out.
  double top = 0;  // the "1" is exp(0)
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < batch; ++j)
      if (target[i] > target[j]) top = std::max(top, scale * (cos[j] - cos[i]));
  double sum = std::exp(-top);
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < batch; ++j)
      if (target[i] > target[j]) sum += std::exp(scale * (cos[j] - cos[i]) - top);
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < batch; ++j)
      if (target[i] > target[j]) {
        const double w = std::exp(scale * (cos[j] - cos[i]) - top) / sum * scale;
        dcos[j] += w;
        dcos[i] -= w;
      }
  for (size_t i = 0; i < batch; ++i)
    for (size_t k = 0; k < d; ++k) {
      grad_a[i * d + k] = float(dcos[i] * b[i * d + k]);
      grad_b[i * d + k] = float(dcos[i] * a[i * d + k]);
    }
  return top + std::log(sum);
}

void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int step) {
  // As PyTorch's AdamW: decay first, then the bias-corrected step. Float math in a loop the
  // compiler vectorises; the corrections are computed once.
  const float step_size = float(lr / (1.0 - std::pow(double(beta1), step)));
  const float inv_c2 = float(1.0 / std::sqrt(1.0 - std::pow(double(beta2), step)));
  const float decay = 1.f - lr * weight_decay;
  for (size_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * mi / (std::sqrt(vi) * inv_c2 + eps);
  }
}

}  // namespace laborspace
