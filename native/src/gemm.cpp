// General matrix product on the ISA's gemm_micro kernel, in the usual packed arrangement. op(B) is
// packed once into gemm_nr-column strips, shared by the threads, and each thread packs the rows of
// op(A) it takes once into gemm_mr-row tiles; packing also absorbs the transposes, so the four
// forms (NN, NT, TN, TT) run the same kernel. Then every tile meets every strip, in cache-sized
// groups: a block of tiles (a few hundred KB) meets a group of strips (about 1 MB), both in L2.
// Each operand is packed exactly once: packing A per group of strips, and by both threads, cost
// 10-20% of the encoder's products. Blocking k as well (each strip's part held in L1) measured no
// faster at the training shapes: the strips stream from L2 fast enough.
#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "scratch.h"

namespace laborspace {
namespace {

constexpr size_t kBlockTiles = 16;   // row tiles of op(A) per block that meets a group of strips
constexpr size_t kMinRunTiles = 8;   // the shortest run of row tiles a thread takes
constexpr size_t kPackedRows = 1024;  // rows of op(A) a thread packs at a time (2 MB at k = 512)
// Packed strips of op(B) that one pass over the blocks of op(A) meets: about 1 MB, so they stay in
// L2 while every block streams past them (the whole packed op(B) of a 1536-wide layer, 3 MB, came
// from L3 for every block and halved the rate at the encoder's shapes).
constexpr size_t kStripBytes = size_t(1) << 20;
// Depths above kMaxDepth run as passes of kDepth, accumulating: a product over a batch's tokens
// (dW = xᵀ dy, k in the thousands) keeps its strips and tiles cache-sized.
constexpr size_t kMaxDepth = 768, kDepth = 512;

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
  const size_t threads = std::max<size_t>(1, threads_for(double(m) * double(n) * double(k)));
  // Packing writes every value the micro-kernel reads, so the buffers need no clearing.
  thread_local std::vector<float> strips_buffer, tiles_buffer;
  const Scratch strips(strips_buffer, panels * k * nr);
  float* packed_b = strips.get();
  const size_t packers = std::min(threads, panels);
  fork_join(packers, [&](size_t t) {
    for (size_t pn = panels * t / packers; pn < panels * (t + 1) / packers; ++pn)
      kern.gemm_pack_b(op_b == Op::transpose, b, ldb, pn * nr, std::min(nr, n - pn * nr), k, packed_b + pn * k * nr);
  });
  // Threads take runs of row tiles when there are enough, else ranges of strips (a few rows against
  // many columns). Each run's rows of op(A) are packed once, by the thread that meets them.
  const bool by_rows = tiles >= 2 * threads || panels < 2 * threads;
  const size_t parts = std::min(threads, by_rows ? tiles : panels);
  const size_t group = std::max<size_t>(1, kStripBytes / (k * nr * sizeof(float)));
  const size_t packed_tiles = std::max<size_t>(kBlockTiles, kPackedRows / mr);
  // Tiles [t0, t1) (at most packed_tiles) against strips [pb, pe), in cache-sized groups.
  const auto meet = [&](size_t t0, size_t t1, size_t pb, size_t pe, float* packed_a) {
    for (size_t ti = t0; ti < t1; ++ti)
      kern.gemm_pack_a(op_a == Op::none, a, lda, ti * mr, std::min(mr, m - ti * mr), k, packed_a + (ti - t0) * k * mr);
    for (size_t g0 = pb; g0 < pe; g0 += group) {
      const size_t g1 = std::min(pe, g0 + group);
      for (size_t b0 = t0; b0 < t1; b0 += kBlockTiles) {
        const size_t b1 = std::min(t1, b0 + kBlockTiles);
        for (size_t pn = g0; pn < g1; ++pn) {
          const size_t n0 = pn * nr, cols = std::min(nr, n - n0);
          for (size_t ti = b0; ti < b1; ++ti)
            kern.gemm_micro(packed_a + (ti - t0) * k * mr, packed_b + pn * k * nr, k, c + ti * mr * ldc + n0, ldc,
                            std::min(mr, m - ti * mr), cols, accumulate);
        }
      }
    }
  };
  if (!by_rows) {
    fork_join(parts, [&](size_t t) {
      const Scratch packed(tiles_buffer, std::min(packed_tiles, tiles) * k * mr);
      for (size_t s0 = 0; s0 < tiles; s0 += packed_tiles)
        meet(s0, std::min(tiles, s0 + packed_tiles), panels * t / parts, panels * (t + 1) / parts, packed.get());
    });
    return;
  }
  // Runs come from a shared counter, long ones first and shorter toward the end: a run is the
  // tiles left over twice the threads, at least kMinRunTiles (or a quarter of a thread's share, if
  // less) and at most packed_tiles. On a shared VM one core often runs slower than the other for a
  // while, and fixed halves waited on it: at the encoder's shapes, medians 1-6% slower on an idle
  // 2-core VM and 13-30% beside one busy process. A tile's result does not depend on which thread
  // made it.
  const size_t shortest = std::clamp<size_t>(tiles / (4 * parts), 1, kMinRunTiles);
  std::atomic<size_t> next{0};
  fork_join(parts, [&](size_t) {
    const Scratch packed(tiles_buffer, std::min(packed_tiles, tiles) * k * mr);
    for (size_t t0 = next.load(std::memory_order_relaxed); t0 < tiles;) {
      const size_t run = std::clamp((tiles - t0) / (2 * parts), shortest, packed_tiles);
      const size_t t1 = std::min(tiles, t0 + run);
      if (!next.compare_exchange_weak(t0, t1, std::memory_order_relaxed)) continue;  // t0 reloaded
      meet(t0, t1, 0, panels, packed.get());
      t0 = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace laborspace
