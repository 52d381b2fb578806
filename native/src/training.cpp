// Training kernels (see training.h). Loss formulas follow the sentence-transformers losses of the
// same names; the gradients are derived by hand and checked against finite differences in tests.
#include "training.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "parallel.h"
#include "scratch.h"

namespace laborspace {
namespace {

// The step's intermediates, one kept buffer per use (scratch.h); uses that are live at the same
// time have different slots. Every one is written before it is read.
enum Slot { kHidden, kEmbedded, kGradEmbedded, kMid, kAdapterOut, kGradU, kGradMid, kScores, kGradScores,
            kRowLoss, kScoresT, kGradScoresT, kCosines, kPairTerms, kDistill, kTeacher, kSlots };

Scratch scratch(Slot slot, size_t n) {
  thread_local std::vector<float> kept[kSlots];
  return Scratch(kept[slot], n);
}

// a_i . b_i for each of n row pairs, on the ISA's dot kernel.
void pair_dots(const IsaKernels& k, const float* a, const float* b, size_t n, size_t d, float* out) {
  for (size_t i = 0; i < n; ++i) k.row_dots(a + i * d, b + i * d, 1, d, out + i, nullptr);
}

// u = h + (h down^T) up^T: the adapter's output before normalisation.
void adapter_forward(const float* h, size_t rows, size_t dout, const Adapter& adapter, float* mid, float* u) {
  gemm(Op::none, Op::transpose, rows, adapter.rank, dout, h, dout, adapter.down, dout, mid, adapter.rank, false);
  std::copy(h, h + rows * dout, u);
  gemm(Op::none, Op::transpose, rows, dout, adapter.rank, mid, adapter.rank, adapter.up, adapter.rank, u, dout, true);
}

// Row i of u scaled to unit length into e (zero rows stay zero).
void normalize_into(const IsaKernels& k, const float* u, size_t rows, size_t dout, float* e) {
  for_rows(rows, 4.0 * dout, [&](size_t i) {
    const double sq = k.sum_squares(u + i * dout, dout);
    const float inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.f;
    for (size_t j = 0; j < dout; ++j) e[i * dout + j] = u[i * dout + j] * inv;
  });
}

}  // namespace

Error head_forward(const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout,
                   const Adapter& adapter, float* h, float* e) {
  gemm(Op::none, Op::transpose, batch, dout, din, x, din, wt, din, h, dout, false);
  const IsaKernels& k = active_kernels();
  for_rows(batch, 40.0 * dout, [&](size_t i) {
    float* hi = h + i * dout;
    for (size_t j = 0; j < dout; ++j) hi[j] += bias[j];
    k.tanh_inplace(hi, dout);
  });
  const size_t bad = first_non_finite(h, batch * dout);
  if (bad < batch * dout)
    return {Error::non_finite, "the head's pre-activation of row " + std::to_string(bad / dout) + " is not finite (NaN from overflowing inputs)"};
  if (adapter.rank == 0) {
    normalize_into(k, h, batch, dout, e);
    return {};
  }
  adapter_forward(h, batch, dout, adapter, scratch(kMid, batch * adapter.rank).get(), e);
  const size_t bad_u = first_non_finite(e, batch * dout);
  if (bad_u < batch * dout)
    return {Error::non_finite, "the adapter's output for row " + std::to_string(bad_u / dout) + " is not finite"};
  normalize_into(k, e, batch, dout, e);
  return {};
}

Error head_backward(const float* x, const float* wt, const float* h, const float* e, const float* grad_e, size_t batch, size_t din,
                    size_t dout, const Adapter& adapter, float weight, const HeadGrads& grads) {
  // dL/du through the normalisation (project out e, divide by |u|); with an adapter, u and
  // h down^T are recomputed (rank-r products, a few percent of the head's).
  const IsaKernels& k = active_kernels();
  const size_t r = adapter.rank;
  const Scratch mid = scratch(kMid, batch * r), u = scratch(kAdapterOut, r ? batch * dout : 0);
  if (r) adapter_forward(h, batch, dout, adapter, mid.get(), u.get());
  const float* un = r ? u.get() : h;
  const Scratch gu_buffer = scratch(kGradU, batch * dout);
  float* gu = gu_buffer.get();
  for_rows(batch, 10.0 * dout, [&](size_t i) {
    const float* ei = e + i * dout;
    const float* gi = grad_e + i * dout;
    const double norm = std::sqrt(k.sum_squares(un + i * dout, dout));
    const float inv = norm > 0 ? float(weight / norm) : 0.f;
    float eg = 0;
    k.row_dots(ei, gi, 1, dout, &eg, nullptr);
    float* out = gu + i * dout;
    if (r) {
      for (size_t j = 0; j < dout; ++j) out[j] = (gi[j] - ei[j] * eg) * inv;
    } else {  // u = h: straight on through tanh, dL/dz = dL/dh (1 - h^2)
      const float* hi = h + i * dout;
      for (size_t j = 0; j < dout; ++j) out[j] = (gi[j] - ei[j] * eg) * inv * (1.f - hi[j] * hi[j]);
    }
  });
  if (r) {
    // dL/dup = gu^T mid, dL/dmid = gu up, dL/ddown = dmid^T h, and dL/dh = gu + dmid down.
    const Scratch gmid = scratch(kGradMid, batch * r);
    gemm(Op::transpose, Op::none, dout, r, batch, gu, dout, mid.get(), r, grads.up, r, false);
    gemm(Op::none, Op::none, batch, r, dout, gu, dout, adapter.up, r, gmid.get(), r, false);
    gemm(Op::transpose, Op::none, r, dout, batch, gmid.get(), r, h, dout, grads.down, dout, false);
    gemm(Op::none, Op::none, batch, dout, r, gmid.get(), r, adapter.down, dout, gu, dout, true);
  }
  if (!grads.wt && !grads.x) return {};
  if (r)  // through tanh: dL/dz = dL/dh (1 - h^2)
    for_rows(batch, 2.0 * dout, [&](size_t i) {
      float* gi = gu + i * dout;
      const float* hi = h + i * dout;
      for (size_t j = 0; j < dout; ++j) gi[j] *= 1.f - hi[j] * hi[j];
    });
  if (grads.x) gemm(Op::none, Op::none, batch, din, dout, gu, dout, wt, din, grads.x, din, false);  // dL/dx = dz W
  if (!grads.wt) return {};
  // dW = dz^T x and dbias = column sums of dz.
  std::fill(grads.bias, grads.bias + dout, 0.f);
  for (size_t i = 0; i < batch; ++i)
    for (size_t j = 0; j < dout; ++j) grads.bias[j] += gu[i * dout + j];
  gemm(Op::transpose, Op::none, dout, din, batch, gu, dout, x, din, grads.wt, din, false);
  return {};
}

double mnrl_loss(const float* a, const float* p, size_t batch, size_t candidates, size_t d, float scale, bool symmetric,
                 const uint8_t* excluded, float* grad_a, float* grad_p) {
  const size_t B = batch, C = candidates;
  const IsaKernels& k = active_kernels();
  const Scratch s = scratch(kScores, B * C), ds = scratch(kGradScores, B * C), row_loss = scratch(kRowLoss, B);
  gemm(Op::none, Op::transpose, B, C, d, a, d, p, d, s.get(), C, false);
  // dL/dS: the softmax over each row of scale * S (a_i against every candidate p_j but those
  // `excluded` marks, its own positive always kept) and, when symmetric, over each column (p_j
  // against every a_i), done as rows of S^T. Rows are independent: on threads, with the
  // exponentials computed in the gradient's own row, and the loss summed in row order.
  const float weight = symmetric ? 0.5f / float(B) : 1.f / float(B);
  double loss = 0;
  auto row_softmax = [&](const float* scores, float* grad, size_t n, const uint8_t* mask) {
    for_rows(B, 30.0 * n, [&](size_t i) {
      const float* si = scores + i * n;
      float* gi = grad + i * n;
      const uint8_t* mi = mask ? mask + i * n : nullptr;
      auto kept = [&](size_t j) { return !mi || j == i || !mi[j]; };
      float best = si[i];
      for (size_t j = 0; j < n; ++j)
        if (kept(j)) best = std::max(best, si[j]);
      const float top = scale * best;
      for (size_t j = 0; j < n; ++j) gi[j] = scale * si[j] - top;
      k.exp_inplace(gi, n);
      double sum = 0;
      for (size_t j = 0; j < n; ++j) {
        if (!kept(j)) gi[j] = 0.f;
        sum += gi[j];
      }
      row_loss[i] = float(weight * (double(top) + std::log(sum) - scale * si[i]));
      const float w = float(scale * weight / sum);
      for (size_t j = 0; j < n; ++j) gi[j] *= w;
      gi[i] -= scale * weight;
    });
    for (size_t i = 0; i < B; ++i) loss += row_loss[i];
  };
  row_softmax(s.get(), ds.get(), C, excluded);
  if (symmetric) {  // square only (candidates == batch): the caller checks
    const Scratch st = scratch(kScoresT, B * B), dst = scratch(kGradScoresT, B * B);
    std::vector<uint8_t> excluded_t(excluded ? B * B : 0);
    for (size_t i = 0; i < B; ++i)
      for (size_t j = 0; j < B; ++j) {
        st[j * B + i] = s[i * B + j];
        if (excluded) excluded_t[j * B + i] = excluded[i * B + j];
      }
    row_softmax(st.get(), dst.get(), B, excluded ? excluded_t.data() : nullptr);
    for (size_t i = 0; i < B; ++i)
      for (size_t j = 0; j < B; ++j) ds[i * B + j] += dst[j * B + i];
  }
  gemm(Op::none, Op::none, B, d, C, ds.get(), C, p, d, grad_a, d, false);       // dL/dA = dS P
  gemm(Op::transpose, Op::none, C, d, B, ds.get(), C, a, d, grad_p, d, false);  // dL/dP = dS^T A
  return loss;
}

double triplet_loss(const float* a, const float* p, const float* n, size_t batch, size_t d, float margin, bool euclidean,
                    float* grad_a, float* grad_p, float* grad_n) {
  const IsaKernels& k = active_kernels();
  double loss = 0;
  const float inv_b = 1.f / float(batch);
  for (size_t i = 0; i < batch; ++i) {
    const float *ai = a + i * d, *pi = p + i * d, *ni = n + i * d;
    float *ga = grad_a + i * d, *gp = grad_p + i * d, *gn = grad_n + i * d;
    if (euclidean) {
      double dp = 0, dn = 0;
      for (size_t q = 0; q < d; ++q) {
        dp += double(ai[q] - pi[q]) * (ai[q] - pi[q]);
        dn += double(ai[q] - ni[q]) * (ai[q] - ni[q]);
      }
      dp = std::sqrt(dp);
      dn = std::sqrt(dn);
      const double v = dp - dn + margin;
      if (v > 0) {
        loss += v * inv_b;
        // d|a - p| / da = (a - p) / |a - p| (0 where a = p).
        const float cp = dp > 0 ? float(inv_b / dp) : 0.f, cn = dn > 0 ? float(inv_b / dn) : 0.f;
        for (size_t q = 0; q < d; ++q) {
          gp[q] = -(ai[q] - pi[q]) * cp;
          gn[q] = (ai[q] - ni[q]) * cn;
          ga[q] = -gp[q] - gn[q];
        }
        continue;
      }
    } else {
      // (1 - a.p) - (1 - a.n) + margin = a.n - a.p + margin
      float ap = 0, an = 0;
      k.row_dots(ai, pi, 1, d, &ap, nullptr);
      k.row_dots(ai, ni, 1, d, &an, nullptr);
      const double v = double(an) - ap + margin;
      if (v > 0) {
        loss += v * inv_b;
        for (size_t q = 0; q < d; ++q) {
          ga[q] = (ni[q] - pi[q]) * inv_b;
          gp[q] = -ai[q] * inv_b;
          gn[q] = ai[q] * inv_b;
        }
        continue;
      }
    }
    std::fill(ga, ga + d, 0.f);
    std::fill(gp, gp + d, 0.f);
    std::fill(gn, gn + d, 0.f);
  }
  return loss;
}

double cosine_mse_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float* grad_a,
                       float* grad_b) {
  const IsaKernels& k = active_kernels();
  const Scratch cos = scratch(kCosines, batch);
  pair_dots(k, a, b, batch, d, cos.get());
  double loss = 0;
  for (size_t i = 0; i < batch; ++i) {
    const double diff = double(cos[i]) - target[i];
    loss += diff * diff / double(batch);
    const float g = float(2.0 * diff / double(batch));
    for (size_t q = 0; q < d; ++q) {
      grad_a[i * d + q] = g * b[i * d + q];
      grad_b[i * d + q] = g * a[i * d + q];
    }
  }
  return loss;
}

double cosent_loss(const float* a, const float* b, const float* target, size_t batch, size_t d, float scale,
                   float* grad_a, float* grad_b) {
  const IsaKernels& k = active_kernels();
  const Scratch cos = scratch(kCosines, batch), terms = scratch(kPairTerms, batch * batch);
  pair_dots(k, a, b, batch, d, cos.get());
  // log(1 + sum exp(x_ij)) over ordered pairs (target_i > target_j), x_ij = scale * (cos_j - cos_i),
  // with the largest term taken out; the terms of each row are exponentiated as one vector (rows on
  // threads) and pairs that do not count are zeroed after. The largest exponent of row i comes
  // from the largest cos_j among the j it outranks.
  float top = 0;  // the "1" is exp(0)
  for (size_t i = 0; i < batch; ++i) {
    float best = -std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < batch; ++j) best = std::max(best, target[i] > target[j] ? cos[j] : -std::numeric_limits<float>::infinity());
    top = std::max(top, scale * (best - cos[i]));
  }
  const Scratch row_sums = scratch(kRowLoss, batch);
  for_rows(batch, 40.0 * batch, [&](size_t i) {
    float* ti = terms.get() + i * batch;
    for (size_t j = 0; j < batch; ++j) ti[j] = scale * (cos[j] - cos[i]) - top;
    k.exp_inplace(ti, batch);
    double sum = 0;
    for (size_t j = 0; j < batch; ++j) {
      ti[j] = target[i] > target[j] ? ti[j] : 0.f;
      sum += ti[j];
    }
    row_sums[i] = float(sum);
  });
  // dL/dcos_k = scale / sum * (sum_i t_ik - sum_j t_kj): column sums less row sums.
  double sum = std::exp(-double(top));
  std::vector<double> dcos(batch, 0.0);
  for (size_t i = 0; i < batch; ++i) {
    sum += row_sums[i];
    const float* ti = terms.get() + i * batch;
    for (size_t j = 0; j < batch; ++j) dcos[j] += ti[j];
  }
  const double w = scale / sum;
  for (size_t i = 0; i < batch; ++i) dcos[i] = (dcos[i] - row_sums[i]) * w;
  for (size_t i = 0; i < batch; ++i) {
    const float g = float(dcos[i]);
    for (size_t q = 0; q < d; ++q) {
      grad_a[i * d + q] = g * b[i * d + q];
      grad_b[i * d + q] = g * a[i * d + q];
    }
  }
  return double(top) + std::log(sum);
}

double distill_loss(const float* e, const float* t, size_t rows, size_t d, float weight, float* grad) {
  if (rows < 2) return 0;
  const Scratch s = scratch(kDistill, rows * rows), st = scratch(kTeacher, rows * rows);
  gemm(Op::none, Op::transpose, rows, rows, d, e, d, e, d, s.get(), rows, false);
  gemm(Op::none, Op::transpose, rows, rows, d, t, d, t, d, st.get(), rows, false);
  // L = w/(R(R-1)) sum_{i != j} D_ij^2 with D = S - T symmetric, so dL/de_i = 4w/(R(R-1)) sum_j D_ij e_j.
  const double c = 1.0 / (double(rows) * double(rows - 1));
  const float g = float(4.0 * c * weight);
  double sum = 0;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < rows; ++j) {
      const float diff = i == j ? 0.f : s[i * rows + j] - st[i * rows + j];
      sum += double(diff) * diff;
      s[i * rows + j] = g * diff;
    }
  gemm(Op::none, Op::none, rows, d, rows, s.get(), rows, e, d, grad, d, true);
  return weight * c * sum;
}

double loss_on_sides(Loss loss, const float* e, size_t batch, size_t d, const LossParams& params, float* grad) {
  const size_t side = batch * d;
  double value = 0;
  switch (loss) {
    case Loss::mnrl:
      value = mnrl_loss(e, e + side, batch, params.candidates ? params.candidates : batch, d, params.scale, false, params.excluded,
                        grad, grad + side);
      break;
    case Loss::triplet:
      value = triplet_loss(e, e + side, e + 2 * side, batch, d, params.margin, false, grad, grad + side, grad + 2 * side);
      break;
    case Loss::cosine_mse: value = cosine_mse_loss(e, e + side, params.targets, batch, d, grad, grad + side); break;
    case Loss::cosent: value = cosent_loss(e, e + side, params.targets, batch, d, params.scale, grad, grad + side); break;
  }
  if (params.teacher) value += distill_loss(e, params.teacher, loss_rows(loss, batch, params), d, params.distill, grad);
  return value;
}

Error head_loss_step(Loss loss, const float* x, size_t batch, size_t din, const float* wt, const float* bias, size_t dout,
                     const Adapter& adapter, const LossParams& params, double* loss_out, const HeadGrads& grads) {
  const size_t rows = loss_rows(loss, batch, params);
  const Scratch h = scratch(kHidden, rows * dout), e = scratch(kEmbedded, rows * dout), grad = scratch(kGradEmbedded, rows * dout);
  if (Error err = head_forward(x, rows, din, wt, bias, dout, adapter, h.get(), e.get())) return err;
  *loss_out = loss_on_sides(loss, e.get(), batch, dout, params, grad.get());
  return head_backward(x, wt, h.get(), e.get(), grad.get(), rows, din, dout, adapter, params.weight, grads);
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
