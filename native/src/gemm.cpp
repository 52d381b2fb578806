// General matrix product on the ISA's gemm_micro kernel, in the usual packed arrangement: each
// thread packs a block of rows of op(A) (up to a few hundred KB, held in L2) into gemm_mr-row tiles and
// its own panels of op(B) into gemm_nr-column strips, then every tile meets every strip. Packing
// also absorbs the transposes, so the four forms (NN, NT, TN, TT) run the same kernel. Blocking
// k as well (strips held in L1) measured 5-10% slower at the training shapes: the strips stream
// from L2 fast enough, and every extra pass re-reads C.
#include <algorithm>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "scratch.h"

namespace laborspace {
namespace {

constexpr size_t kBlockTiles = 16;  // row tiles per packed block of op(A)
constexpr size_t kPackSteps = 64;   // steps of k per pass when packing a transposed operand
// Packed strips of op(B) that one pass over the blocks of op(A) meets: about 1 MB, so they stay in
// L2 while every block streams past them (the whole packed op(B) of a 1536-wide layer, 3 MB, came
// from L3 for every block and halved the rate at the encoder's shapes).
constexpr size_t kStripBytes = size_t(1) << 20;
// Depths above kMaxDepth run as passes of kDepth, accumulating: a product over a batch's tokens
// (dW = xᵀ dy, k in the thousands) keeps its strips and tiles cache-sized.
constexpr size_t kMaxDepth = 768, kDepth = 512;

// Packs `count` lines of an operand, from line `first`, k-major: out[p*width + i] = line (first+i)
// at step p, zero for count <= i < width. A line is a row of op(A) or a column of op(B); when
// `lines_contiguous`, line i is stored as src[i*ld + p] (A as is, B transposed), else as
// src[p*ld + i] (A transposed, B as is).
void pack(bool lines_contiguous, const float* src, size_t ld, size_t first, size_t count, size_t k, size_t width,
          float* out) {
  if (count < width) std::fill(out, out + k * width, 0.f);
  if (!lines_contiguous) {
    for (size_t p = 0; p < k; ++p) std::copy(src + p * ld + first, src + p * ld + first + count, out + p * width);
    return;
  }
  for (size_t p0 = 0; p0 < k; p0 += kPackSteps)
    for (size_t i = 0; i < count; ++i) {
      const float* line = src + (first + i) * ld;
      for (size_t p = p0; p < std::min(k, p0 + kPackSteps); ++p) out[p * width + i] = line[p];
    }
}

}  // namespace

void gemm(Op op_a, Op op_b, size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b, size_t ldb,
          float* c, size_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate)
      for (size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    return;
  }
  if (k > kMaxDepth) {
    for (size_t k0 = 0; k0 < k; k0 += kDepth) {
      const size_t kc = std::min(kDepth, k - k0);
      gemm(op_a, op_b, m, n, kc, op_a == Op::none ? a + k0 : a + k0 * lda, lda, op_b == Op::none ? b + k0 * ldb : b + k0, ldb,
           c, ldc, accumulate || k0 > 0);
    }
    return;
  }
  const IsaKernels& kern = active_kernels();
  const size_t mr = kern.gemm_mr, nr = kern.gemm_nr;
  if (!accumulate && 2 * n < nr && m > n) {
    // A product narrower than half a column strip (the adapter's rank-r ones) would be mostly
    // padding: C^T = op(B)^T op(A)^T instead, whose n rows fill row tiles, transposed back after.
    thread_local std::vector<float> transposed_buffer;
    const Scratch ct(transposed_buffer, n * m);
    const auto flip = [](Op op) { return op == Op::none ? Op::transpose : Op::none; };
    gemm(flip(op_b), flip(op_a), n, m, k, b, ldb, a, lda, ct.get(), m, false);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < n; ++j) c[i * ldc + j] = ct[j * m + i];
    return;
  }
  const size_t panels = (n + nr - 1) / nr, tiles = (m + mr - 1) / mr;
  const size_t threads = threads_for(double(m) * double(n) * double(k));
  // Threads take strips of columns when there are enough (each packs its own), else tiles of rows
  // against strips packed up front.
  const bool by_panels = threads <= 1 || panels >= 2 * threads;
  // Packing writes every value the micro-kernel reads, so the buffers need no clearing.
  thread_local std::vector<float> shared_buffer, own_buffer, block_buffer;
  const Scratch shared(shared_buffer, by_panels ? 0 : panels * k * nr);
  float* shared_b = shared.get();
  if (!by_panels)
    for (size_t pn = 0; pn < panels; ++pn)
      pack(op_b == Op::transpose, b, ldb, pn * nr, std::min(nr, n - pn * nr), k, nr, shared_b + pn * k * nr);
  const size_t t_count = std::min(threads, by_panels ? panels : tiles);
  fork_join(std::max<size_t>(t_count, 1), [&](size_t t) {
    const size_t count = std::max<size_t>(t_count, 1);
    const size_t pb = by_panels ? panels * t / count : 0, pe = by_panels ? panels * (t + 1) / count : panels;
    const size_t tb = by_panels ? 0 : tiles * t / count, te = by_panels ? tiles : tiles * (t + 1) / count;
    const size_t group = std::max<size_t>(1, kStripBytes / (k * nr * sizeof(float)));
    const Scratch own(own_buffer, by_panels ? std::min(group, pe - pb) * k * nr : 0);
    float* own_b = own.get();
    const Scratch packed_block(block_buffer, kBlockTiles * k * mr);
    float* block = packed_block.get();
    // Groups of strips held in L2; each group meets every block of rows (repacked per group: a
    // copy of op(A) per megabyte of op(B), small beside the products).
    for (size_t g0 = pb; g0 < pe; g0 += group) {
      const size_t g1 = std::min(pe, g0 + group);
      if (by_panels)
        for (size_t pn = g0; pn < g1; ++pn)
          pack(op_b == Op::transpose, b, ldb, pn * nr, std::min(nr, n - pn * nr), k, nr, own_b + (pn - g0) * k * nr);
      for (size_t t0 = tb; t0 < te; t0 += kBlockTiles) {
        const size_t t1 = std::min(te, t0 + kBlockTiles);
        for (size_t ti = t0; ti < t1; ++ti)
          pack(op_a == Op::none, a, lda, ti * mr, std::min(mr, m - ti * mr), k, mr, block + (ti - t0) * k * mr);
        for (size_t pn = g0; pn < g1; ++pn) {
          const float* panel = by_panels ? own_b + (pn - g0) * k * nr : shared_b + pn * k * nr;
          const size_t n0 = pn * nr, cols = std::min(nr, n - n0);
          for (size_t ti = t0; ti < t1; ++ti)
            kern.gemm_micro(block + (ti - t0) * k * mr, panel, k, c + ti * mr * ldc + n0, ldc,
                            std::min(mr, m - ti * mr), cols, accumulate);
        }
      }
    }
  });
}

}  // namespace laborspace
