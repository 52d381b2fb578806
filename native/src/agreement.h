// How far two computations of the same values are apart: the GPU's self-check against the CPU
// (addon/encoder.cpp) and the CUDA check programs (native/check/cuda_compare.h) both judge by these.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

namespace laborspace {

// The lowest cosine between row i of a and row i of b, over rows x d values each.
inline double worst_row_cosine(const float* a, const float* b, size_t rows, size_t d) {
  double worst = 1;
  for (size_t s = 0; s < rows; ++s) {
    double dot = 0, na = 0, nb = 0;
    for (size_t j = 0; j < d; ++j) {
      const double x = a[s * d + j], y = b[s * d + j];
      dot += x * y, na += x * x, nb += y * y;
    }
    worst = std::min(worst, dot / std::sqrt(std::max(na * nb, 1e-30)));
  }
  return worst;
}

// The largest |a_i - b_i| over n values; raises *largest to the largest |a_i| among them.
inline double max_abs_diff(const float* a, const float* b, size_t n, double* largest) {
  double d = 0;
  for (size_t i = 0; i < n; ++i) {
    d = std::max(d, double(std::fabs(a[i] - b[i])));
    *largest = std::max(*largest, double(std::fabs(a[i])));
  }
  return d;
}

}  // namespace laborspace
