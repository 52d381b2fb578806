// The kernels on a machine where Node cannot run them: built for arm64 by scripts/check-arm64.sh
// and run under qemu-user (an arm64 Node does not start there), each driver against a plain
// double-precision reference computed here, on ragged shapes, with the error paths. On x86-64 the
// TypeScript tests cover the same ground for every ISA (test/native.test.ts).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../src/kernels.h"

using namespace laborspace;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

std::vector<float> random_matrix(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

void check_isa() {
  check(active_kernels().isa == Isa::scalar, std::string("the active ISA is scalar: ") + isa_name(active_kernels().isa));
  check(!isa_supported(Isa::avx2) && !isa_supported(Isa::avx512) && !set_active_isa(Isa::avx2),
        "AVX2 and AVX-512 are refused off x86-64");
}

void check_gemm(std::mt19937& rng) {
  const size_t m = 37, n = 29, k = 53;
  for (Op op_a : {Op::none, Op::transpose})
    for (Op op_b : {Op::none, Op::transpose})
      for (bool accumulate : {false, true}) {
        std::vector<float> a = random_matrix(m * k, rng), b = random_matrix(k * n, rng), c = random_matrix(m * n, rng);
        std::vector<double> expected(m * n);
        for (size_t i = 0; i < m; ++i)
          for (size_t j = 0; j < n; ++j) {
            double s = accumulate ? c[i * n + j] : 0;
            for (size_t p = 0; p < k; ++p)
              s += double(op_a == Op::none ? a[i * k + p] : a[p * m + i]) * (op_b == Op::none ? b[p * n + j] : b[j * k + p]);
            expected[i * n + j] = s;
          }
        gemm(op_a, op_b, m, n, k, a.data(), op_a == Op::none ? k : m, b.data(), op_b == Op::none ? n : k, c.data(), n, accumulate);
        const double diff = max_abs_diff(c, expected);
        check(diff < 1e-4, "gemm " + std::string(op_a == Op::none ? "N" : "T") + (op_b == Op::none ? "N" : "T") +
                               (accumulate ? " +=" : " =") + " 37x29x53, max diff " + std::to_string(diff));
      }
}

// The reference top-k: every eligible row scored in double, sorted by score then index.
std::vector<int32_t> reference_topk(const std::vector<float>& q, const std::vector<float>& x, size_t n, size_t d, size_t k,
                                    Metric metric, const std::vector<uint8_t>& mask) {
  std::vector<std::pair<double, int32_t>> scored;
  for (size_t r = 0; r < n; ++r) {
    if (!mask.empty() && !mask[r]) continue;
    double dot = 0, qq = 0, xx = 0;
    for (size_t p = 0; p < d; ++p) {
      dot += double(q[p]) * x[r * d + p];
      qq += double(q[p]) * q[p];
      xx += double(x[r * d + p]) * x[r * d + p];
    }
    scored.push_back({metric == Metric::cosine ? dot / std::sqrt(qq * xx) : dot, int32_t(r)});
  }
  std::sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::vector<int32_t> rows;
  for (size_t i = 0; i < std::min(k, scored.size()); ++i) rows.push_back(scored[i].second);
  return rows;
}

void check_topk(std::mt19937& rng) {
  const size_t m = 5, n = 1003, d = 77, k = 10;
  std::vector<float> q = random_matrix(m * d, rng), x = random_matrix(n * d, rng);
  std::vector<uint8_t> mask(n);
  for (size_t r = 0; r < n; ++r) mask[r] = r % 3 != 0;
  for (Metric metric : {Metric::dot, Metric::cosine})
    for (bool masked : {false, true}) {
      std::vector<int32_t> idx(m * k);
      std::vector<float> scores(m * k);
      size_t k_out = 0;
      Error e = topk(q.data(), m, x.data(), n, d, k, metric, masked ? mask.data() : nullptr, idx.data(), scores.data(), &k_out);
      bool same = !e && k_out == k;
      for (size_t i = 0; same && i < m; ++i) {
        std::vector<float> qi(q.begin() + i * d, q.begin() + (i + 1) * d);
        std::vector<int32_t> expected = reference_topk(qi, x, n, d, k, metric, masked ? mask : std::vector<uint8_t>());
        same = std::equal(expected.begin(), expected.end(), idx.begin() + i * k);
      }
      check(same, std::string("topk ") + (metric == Metric::cosine ? "cosine" : "dot") + (masked ? ", masked" : "") +
                      ": the reference's rows in its order");
    }
  // Every row a candidate: the quantised search is exact.
  std::vector<int8_t> codes(n * d);
  std::vector<float> scales(n);
  quantize_rows(x.data(), n, d, codes.data(), scales.data());
  std::vector<int32_t> exact(m * k), approx(m * k);
  std::vector<float> exact_scores(m * k), approx_scores(m * k);
  size_t k1 = 0, k2 = 0;
  Error e1 = topk(q.data(), m, x.data(), n, d, k, Metric::dot, nullptr, exact.data(), exact_scores.data(), &k1);
  Error e2 = topk_quantized(q.data(), m, nullptr, d, codes.data(), scales.data(), x.data(), n, d, k, n, approx.data(),
                            approx_scores.data(), &k2);
  check(!e1 && !e2 && k1 == k2 && exact == approx, "topk_quantized with every row a candidate equals the exact top-k");
  // A NaN in a query is an error, not an answer.
  q[3] = std::numeric_limits<float>::quiet_NaN();
  Error bad = topk(q.data(), m, x.data(), n, d, k, Metric::dot, nullptr, exact.data(), exact_scores.data(), &k1);
  check(bad.kind == Error::non_finite, "a NaN query is refused: " + bad.message);
  check(first_non_finite(q.data(), q.size()) == 3, "first_non_finite finds it");
}

void check_rows(std::mt19937& rng) {
  const size_t n = 9, d = 131;
  std::vector<float> x = random_matrix(n * d, rng), out(n * d);
  std::fill(x.begin() + 4 * d, x.begin() + 5 * d, 0.f);
  normalize_rows(x.data(), n, d, out.data());
  bool unit = true;
  for (size_t r = 0; r < n; ++r) {
    double s = 0;
    for (size_t p = 0; p < d; ++p) s += double(out[r * d + p]) * out[r * d + p];
    unit = unit && (r == 4 ? s == 0 : std::fabs(s - 1) < 1e-5);
  }
  check(unit, "normalize_rows: unit rows, the zero row left zero");
  const std::vector<int32_t> indices = {0, 2, 8, 1}, offsets = {0, 3, 4};
  const std::vector<float> weights = {0.5f, -1.f, 2.f, 3.f};
  std::vector<float> combined(2 * d);
  combine_rows(x.data(), d, indices.data(), weights.data(), offsets.data(), 2, combined.data());
  std::vector<double> expected(2 * d);
  for (size_t c = 0; c < 2; ++c)
    for (int32_t t = offsets[c]; t < offsets[c + 1]; ++t)
      for (size_t p = 0; p < d; ++p) expected[c * d + p] += double(weights[t]) * x[indices[t] * d + p];
  check(max_abs_diff(combined, expected) < 1e-5, "combine_rows: weighted sums of rows");
  std::vector<float> sims(n * n);
  Error e = similarity(out.data(), n, out.data(), n, d, Metric::dot, sims.data());
  check(!e && std::fabs(sims[0] - 1) < 1e-5 && sims[4 * n + 4] == 0, "similarity of unit rows: 1 on the diagonal, 0 for the zero row");
}

void check_elementwise() {
  std::vector<float> xs;
  for (float v = -20.f; v <= 20.f; v += 0.37f) xs.push_back(v);
  std::vector<float> e = xs, t = xs;
  active_kernels().exp_inplace(e.data(), e.size());
  active_kernels().tanh_inplace(t.data(), t.size());
  double exp_rel = 0, tanh_abs = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    exp_rel = std::max(exp_rel, std::fabs(e[i] - std::exp(double(xs[i]))) / std::exp(double(xs[i])));
    tanh_abs = std::max(tanh_abs, std::fabs(t[i] - std::tanh(double(xs[i]))));
  }
  check(exp_rel < 1e-6, "exp within 1e-6 relative: " + std::to_string(exp_rel));
  check(tanh_abs < 1e-6, "tanh within 1e-6 absolute: " + std::to_string(tanh_abs));
  float nan = std::numeric_limits<float>::quiet_NaN();
  active_kernels().exp_inplace(&nan, 1);
  check(std::isnan(nan), "exp keeps NaN");
}

}  // namespace

int main() {
  std::mt19937 rng(11);
  check_isa();
  check_gemm(rng);
  check_topk(rng);
  check_rows(rng);
  check_elementwise();
  std::printf("%s: %d failed\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
