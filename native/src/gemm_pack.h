// Packing of GEMM operands into the micro-kernel's panels, with the panel width a compile-time
// constant: each ISA file includes it inside its target region (as adamw_body.h), so a line of a
// strip is a few vector moves instead of a call to memmove per 6 or 64 floats, which cost as much
// as the rest of the packing at the encoder's shapes.
#pragma once
#include <algorithm>
#include <cstddef>

namespace laborspace {
namespace {

// Packs `count` (<= W) lines of an operand, from line `first`, k-major: out[p*W + i] = line
// (first+i) at step p, zero for count <= i < W. A line is a row of op(A) or a column of op(B); when
// `lines_contiguous`, line i is stored as src[i*ld + p] (A as is, B transposed), else as
// src[p*ld + i] (A transposed, B as is). With `transpose8` (an 8 x 8 transpose in registers,
// out[r*out_ld + i] = src[i*ld + r]), full panels of contiguous lines are packed 8 lines by 8 steps
// at a time (one float at a time, with stores 64 floats apart, packing op(B) of the NT products took
// 7.2% of the AVX-512 head step's cycles; 5.3% this way).
using Transpose8 = void (*)(const float* src, size_t ld, float* out, size_t out_ld);

template <size_t W, Transpose8 transpose8 = nullptr>
void pack_panel(bool lines_contiguous, const float* src, size_t ld, size_t first, size_t count, size_t k, float* out) {
  if (!lines_contiguous) {
    const float* s = src + first;
    if (count == W) {
      for (size_t p = 0; p < k; ++p)
        for (size_t i = 0; i < W; ++i) out[p * W + i] = s[p * ld + i];
    } else {
      for (size_t p = 0; p < k; ++p)
        for (size_t i = 0; i < W; ++i) out[p * W + i] = i < count ? s[p * ld + i] : 0.f;
    }
    return;
  }
  size_t done = 0;  // steps packed through transpose8
  if constexpr (transpose8 != nullptr && W % 8 == 0) {
    if (count == W)
      for (; done + 8 <= k; done += 8)
        for (size_t i = 0; i < W; i += 8) transpose8(src + (first + i) * ld + done, ld, out + done * W + i, W);
  }
  // Steps of k in chunks, so the `count` lines being read stay in L1 while their chunk is written.
  constexpr size_t kSteps = 64;
  if (count < W) std::fill(out, out + k * W, 0.f);
  for (size_t p0 = done; p0 < k; p0 += kSteps) {
    const size_t p1 = std::min(k, p0 + kSteps);
    for (size_t i = 0; i < count; ++i) {
      const float* line = src + (first + i) * ld;
      for (size_t p = p0; p < p1; ++p) out[p * W + i] = line[p];
    }
  }
}

}  // namespace
}  // namespace laborspace
