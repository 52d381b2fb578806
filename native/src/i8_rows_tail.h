// The int8 row kernels' last step for four rows: the values past each row's SIMD body added to
// their sums, and the sums written. Each ISA file includes it inside its target region; the
// anonymous namespace keeps the compiled copies apart.
#pragma once
#include <cstddef>
#include <cstdint>

namespace laborspace {
namespace {

void finish_four_rows(int64_t* sums, const int16_t* q, const int8_t* x, size_t d, size_t from, int64_t* out) {
  for (int j = 0; j < 4; ++j) {
    for (size_t t = from; t < d; ++t) sums[j] += int32_t(q[t]) * x[j * d + t];
    out[j] = sums[j];
  }
}

}  // namespace
}  // namespace laborspace
