// The AdamW update as a plain loop over restrict pointers, for the compiler to vectorise with the
// instruction set of the file that includes it: each ISA file includes it inside its target region,
// and the anonymous namespace keeps the three compiled copies apart.
#pragma once
#include <cmath>
#include <cstddef>

namespace laborspace {
namespace {

void adamw_body(float* __restrict param, const float* __restrict grad, float* __restrict m, float* __restrict v,
                size_t n, float beta1, float beta2, float eps, float decay, float step_size, float inv_c2) {
  for (size_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * mi / (std::sqrt(vi) * inv_c2 + eps);
  }
}

}  // namespace
}  // namespace laborspace
