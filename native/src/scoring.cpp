// Drivers over the ISA kernels: similarity matrices and exact top-k, blocked for the caches and
// split across threads; row normalisation and linear combinations of rows.
//
// Two paths score queries against rows:
// - tiled (many queries): queries are packed once into panels of tile_queries; database rows are
//   read in place, in blocks of kBlockRows (~L2-sized) that meet every query panel, each tile of
//   tile_rows rows broadcast straight from the matrix (no copy of the database). This is a GEMM
//   with the top-k selection fused into the end of each tile, so the m x n score matrix is never
//   written (the similarity driver writes it, through a different sink).
// - row (few queries): each row is streamed once per query from L2 in chunks of kChunkRows; the
//   single-query case is bound by memory bandwidth, not arithmetic.
#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace laborspace {
namespace {

constexpr size_t kBlockRows = 240;  // 20 tiles of 12 rows, 480 KB at dim 512
constexpr size_t kChunkRows = 64;

struct Run {
  size_t begin, end;  // half-open range of eligible rows
};

// The part of the work one thread does: a range of queries and a list of row runs.
struct Share {
  size_t q_begin = 0, q_end = 0;
  std::vector<Run> runs;
};

std::vector<Run> eligible_runs(const uint8_t* mask, size_t n) {
  std::vector<Run> runs;
  if (!mask) {
    if (n) runs.push_back({0, n});
    return runs;
  }
  for (size_t r = 0; r < n;) {
    while (r < n && !mask[r]) ++r;
    const size_t b = r;
    while (r < n && mask[r]) ++r;
    if (r > b) runs.push_back({b, r});
  }
  return runs;
}

// Splits rows across threads when there are more rows than queries, else queries (in multiples
// of `q_align` so packed query panels are not shared).
std::vector<Share> plan_shares(size_t m, const std::vector<Run>& runs, size_t eligible, size_t d, size_t q_align) {
  const size_t threads = threads_for(double(m) * double(eligible) * double(d));
  std::vector<Share> shares;
  if (threads <= 1 || eligible >= m) {
    const size_t t_count = std::max<size_t>(1, std::min(threads, (eligible + kChunkRows - 1) / kChunkRows));
    size_t run = 0, offset = 0;
    for (size_t t = 0; t < t_count; ++t) {
      Share s{0, m, {}};
      size_t want = eligible * (t + 1) / t_count - eligible * t / t_count;
      while (want > 0 && run < runs.size()) {
        const size_t b = runs[run].begin + offset;
        const size_t take = std::min(want, runs[run].end - b);
        s.runs.push_back({b, b + take});
        want -= take;
        offset += take;
        if (runs[run].begin + offset == runs[run].end) ++run, offset = 0;
      }
      shares.push_back(std::move(s));
    }
  } else {
    const size_t panels = (m + q_align - 1) / q_align;
    const size_t t_count = std::min(threads, panels);
    for (size_t t = 0; t < t_count; ++t) {
      const size_t pb = panels * t / t_count, pe = panels * (t + 1) / t_count;
      shares.push_back({pb * q_align, std::min(m, pe * q_align), runs});
    }
  }
  return shares;
}

float inverse_norm(const IsaKernels& k, const float* row, size_t d) {
  const double sq = k.sum_squares(row, d);
  return sq > 0 ? static_cast<float>(1.0 / std::sqrt(sq)) : 0.f;
}

// Scores one thread's share, offering each score to the sink in ascending row order per query.
// Returns the first row whose score was not finite, or SIZE_MAX.
template <class Sink>
size_t score_share(const IsaKernels& k, const float* q, const float* x, size_t d, Metric metric,
                   const std::vector<float>& q_inv, const std::vector<float>& q_packed, const Share& share,
                   Sink& sink) {
  size_t bad_row = SIZE_MAX;
  const bool cosine = metric == Metric::cosine;
  if (!q_packed.empty()) {
    const size_t tr = k.tile_rows, tq = k.tile_queries;
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<int32_t> rows;
    std::vector<float> scale, c(tr * tq), thresholds(tq);
    std::vector<const float*> ptrs(tr);
    std::vector<uint32_t> hits(tr);
    size_t run = 0, next = share.runs.empty() ? 0 : share.runs[0].begin;
    while (run < share.runs.size()) {
      rows.clear();
      while (rows.size() < kBlockRows && run < share.runs.size()) {
        rows.push_back(static_cast<int32_t>(next++));
        if (next == share.runs[run].end && ++run < share.runs.size()) next = share.runs[run].begin;
      }
      scale.resize(rows.size());
      for (size_t j = 0; j < rows.size(); ++j) scale[j] = cosine ? inverse_norm(k, x + size_t(rows[j]) * d, d) : 1.f;
      for (size_t q0 = share.q_begin; q0 < share.q_end; q0 += tq) {
        const float* panel = q_packed.data() + q0 * d;
        const size_t q_count = std::min(tq, share.q_end - q0);
        for (size_t r0 = 0; r0 < rows.size(); r0 += tr) {
          const size_t r_count = std::min(tr, rows.size() - r0);
          float tile_scale[32];
          for (size_t r = 0; r < tr; ++r) {  // a short last tile repeats its first row, scaled to 0
            ptrs[r] = x + size_t(rows[r0 + (r < r_count ? r : 0)]) * d;
            tile_scale[r] = r < r_count ? scale[r0 + r] : 0.f;
          }
          for (size_t j = 0; j < tq; ++j) thresholds[j] = j < q_count ? sink.threshold(q0 + j) : inf;
          if (!k.gemm_tile(ptrs.data(), tile_scale, panel, d, c.data(), thresholds.data(), hits.data())) {
            for (size_t r = 0; r < r_count; ++r)
              for (size_t j = 0; j < q_count; ++j)
                if (!std::isfinite(c[r * tq + j])) bad_row = std::min<size_t>(bad_row, rows[r0 + r]);
          }
          for (size_t r = 0; r < r_count; ++r)
            for (uint32_t h = hits[r]; h; h &= h - 1) {
              const unsigned j = __builtin_ctz(h);
              sink.offer(q0 + j, rows[r0 + r], c[r * tq + j]);
            }
        }
      }
    }
    return bad_row;
  }
  std::vector<float> scores(kChunkRows), sq(kChunkRows);
  for (const Run& run : share.runs) {
    for (size_t r0 = run.begin; r0 < run.end; r0 += kChunkRows) {
      const size_t count = std::min(kChunkRows, run.end - r0);
      for (size_t i = share.q_begin; i < share.q_end; ++i) {
        const bool first = i == share.q_begin;
        k.row_dots(q + i * d, x + r0 * d, count, d, scores.data(), cosine && first ? sq.data() : nullptr);
        for (size_t j = 0; j < count; ++j) {
          // A NaN score stays NaN (NaN * 0) so that it is reported, not hidden as a zero norm.
          const float s = cosine ? scores[j] * (sq[j] > 0 ? q_inv[i] / std::sqrt(sq[j]) : 0.f) : scores[j];
          if (!std::isfinite(s)) bad_row = std::min(bad_row, r0 + j);
          if (s > sink.threshold(i)) sink.offer(i, static_cast<int32_t>(r0 + j), s);
        }
      }
    }
  }
  return bad_row;
}

// Shared set-up of both drivers: query validation, query norms, packed query panels, shares.
// `sinks` receives one sink per thread, each a copy of `prototype`.
template <class Sink>
Error run_scoring(const float* q, size_t m, const float* x, size_t n, size_t d, Metric metric, const uint8_t* mask,
                  const Sink& prototype, std::vector<Sink>& sinks) {
  const size_t bad_q = first_non_finite(q, m * d);
  if (bad_q < m * d)
    return {Error::non_finite, "query row " + std::to_string(bad_q / d) + ", column " + std::to_string(bad_q % d) +
                                   " is " + (std::isnan(q[bad_q]) ? "NaN" : "infinite")};
  const IsaKernels& k = active_kernels();
  const std::vector<Run> runs = eligible_runs(mask, n);
  const size_t eligible = count_eligible(mask, n);
  if (m == 0 || eligible == 0) return {};
  std::vector<float> q_inv(m, 1.f);
  if (metric == Metric::cosine)
    for (size_t i = 0; i < m; ++i) q_inv[i] = inverse_norm(k, q + i * d, d);
  std::vector<float> q_packed;
  const size_t tq = k.tile_queries;
  if (m >= tq / 2) {  // below that a query panel would be mostly padding: use the row path
    const size_t panels = (m + tq - 1) / tq;
    q_packed.assign(panels * tq * d, 0.f);
    for (size_t i = 0; i < m; ++i) {
      float* dst = q_packed.data() + (i / tq) * tq * d + (i % tq);
      for (size_t p = 0; p < d; ++p) dst[p * tq] = q[i * d + p] * q_inv[i];
    }
  }
  const std::vector<Share> shares = plan_shares(m, runs, eligible, d, tq);
  std::vector<size_t> bad(shares.size(), SIZE_MAX);
  sinks.assign(shares.size(), prototype);
  fork_join(shares.size(), [&](size_t t) {
    bad[t] = score_share(k, q, x, d, metric, q_inv, q_packed, shares[t], sinks[t]);
  });
  const size_t bad_row = *std::min_element(bad.begin(), bad.end());
  if (bad_row != SIZE_MAX) return describe_bad_row(x, bad_row, d);
  return {};
}

// A sink receives scores through offer(query, row, score), in ascending row order per query, for
// scores above threshold(query).
struct MatrixSink {
  float* out;
  size_t n;
  float threshold(size_t) const { return -std::numeric_limits<float>::infinity(); }
  void offer(size_t i, int32_t row, float s) { out[i * n + row] = s; }
};

struct Candidate {
  float score;
  int32_t index;
};
// Ranking order: higher score first, then lower index.
inline bool better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}
inline bool worse(const Candidate& a, const Candidate& b) { return better(b, a); }

// Per-thread bounded heaps (worst candidate at the root), one per query.
struct TopkSink {
  size_t k;
  std::vector<Candidate> heap;
  std::vector<uint32_t> size;
  std::vector<float> threshold_;  // root score once a heap is full: cheaper rejection
  TopkSink(size_t m, size_t k_)
      : k(k_), heap(m * k_), size(m, 0), threshold_(m, -std::numeric_limits<float>::infinity()) {}

  float threshold(size_t i) const { return threshold_[i]; }

  // Rows arrive in ascending order, so a score equal to the root's loses the tie-break and is not
  // offered; while a heap fills its threshold is -inf and every finite score enters.
  void offer(size_t i, int32_t row, float s) {
    if (s > threshold_[i]) push(i, {s, row});
  }

  void push(size_t i, Candidate c) {
    Candidate* h = heap.data() + i * k;
    size_t n = size[i];
    if (n < k) {
      size_t pos = n++;
      while (pos > 0 && worse(c, h[(pos - 1) / 2])) {
        h[pos] = h[(pos - 1) / 2];
        pos = (pos - 1) / 2;
      }
      h[pos] = c;
      size[i] = static_cast<uint32_t>(n);
    } else {
      size_t pos = 0;
      for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= n) break;
        if (child + 1 < n && worse(h[child + 1], h[child])) ++child;
        if (!worse(h[child], c)) break;
        h[pos] = h[child];
        pos = child;
      }
      h[pos] = c;
    }
    if (size[i] == k) threshold_[i] = h[0].score;
  }
};

}  // namespace

Error describe_bad_row(const float* x, size_t row, size_t d) {
  const size_t col = first_non_finite(x + row * d, d);
  if (col < d) {
    const float v = x[row * d + col];
    return {Error::non_finite, "database row " + std::to_string(row) + ", column " + std::to_string(col) + " is " +
                                   (std::isnan(v) ? "NaN" : "infinite")};
  }
  return {Error::overflow, "score of database row " + std::to_string(row) + " overflows float32"};
}

size_t first_non_finite(const float* x, size_t len) {
  // A float is NaN or infinite when its exponent bits are all set. Or-ing that test over a chunk is
  // integer work the compiler vectorises (a float sum would be a serial chain of adds), and only a
  // chunk that holds a bad value is searched element by element.
  constexpr size_t kChunk = 256;
  constexpr uint32_t kExponent = 0x7f800000u;
  for (size_t c = 0; c < len; c += kChunk) {
    const size_t end = std::min(len, c + kChunk);
    uint32_t bad = 0;
    for (size_t i = c; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      bad |= uint32_t((bits & kExponent) == kExponent);
    }
    if (bad == 0) continue;
    for (size_t i = c; i < end; ++i)
      if (!std::isfinite(x[i])) return i;
  }
  return len;
}

size_t count_eligible(const uint8_t* mask, size_t n) {
  if (!mask) return n;
  size_t c = 0;
  for (size_t r = 0; r < n; ++r) c += mask[r] != 0;
  return c;
}

Error similarity(const float* q, size_t m, const float* x, size_t n, size_t d, Metric metric, float* out) {
  std::vector<MatrixSink> sinks;
  return run_scoring(q, m, x, n, d, metric, nullptr, MatrixSink{out, n}, sinks);
}

Error topk(const float* q, size_t m, const float* x, size_t n, size_t d, size_t k, Metric metric,
           const uint8_t* mask, int32_t* out_idx, float* out_scores, size_t* k_out) {
  const size_t kk = std::min(k, count_eligible(mask, n));
  *k_out = kk;
  if (kk == 0 || m == 0) return {};
  std::vector<TopkSink> sinks;
  if (Error err = run_scoring(q, m, x, n, d, metric, mask, TopkSink(m, kk), sinks)) return err;
  std::vector<Candidate> merged;
  for (size_t i = 0; i < m; ++i) {
    merged.clear();
    for (const TopkSink& s : sinks)
      merged.insert(merged.end(), s.heap.begin() + i * kk, s.heap.begin() + i * kk + s.size[i]);
    std::partial_sort(merged.begin(), merged.begin() + kk, merged.end(), better);
    for (size_t j = 0; j < kk; ++j) {
      out_idx[i * kk + j] = merged[j].index;
      out_scores[i * kk + j] = merged[j].score;
    }
  }
  return {};
}

void normalize_rows(const float* x, size_t n, size_t d, float* out) {
  const IsaKernels& k = active_kernels();
  const size_t threads = threads_for(double(n) * d);
  fork_join(threads, [&](size_t t) {
    for (size_t r = n * t / threads; r < n * (t + 1) / threads; ++r) {
      const float s = inverse_norm(k, x + r * d, d);
      for (size_t p = 0; p < d; ++p) out[r * d + p] = x[r * d + p] * s;
    }
  });
}

void combine_rows(const float* x, size_t d, const int32_t* indices, const float* weights, const int32_t* offsets,
                  size_t count, float* out) {
  const IsaKernels& k = active_kernels();
  const size_t threads = threads_for(double(offsets[count]) * d);
  fork_join(threads, [&](size_t t) {
    for (size_t c = count * t / threads; c < count * (t + 1) / threads; ++c) {
      float* dst = out + c * d;
      std::fill(dst, dst + d, 0.f);
      for (int32_t e = offsets[c]; e < offsets[c + 1]; ++e) k.axpy(weights[e], x + size_t(indices[e]) * d, dst, d);
    }
  });
}

void quantize_rows(const float* x, size_t n, size_t d, int8_t* codes, float* scales) {
  const size_t threads = threads_for(double(n) * d);
  fork_join(threads, [&](size_t t) {
    for (size_t r = n * t / threads; r < n * (t + 1) / threads; ++r) {
      const float* row = x + r * d;
      float largest = 0.f;
      for (size_t p = 0; p < d; ++p) largest = std::max(largest, std::fabs(row[p]));
      const float scale = largest > 0.f ? largest / 127.f : 1.f;
      const float inverse = 1.f / scale;
      scales[r] = scale;
      for (size_t p = 0; p < d; ++p)
        codes[r * d + p] = static_cast<int8_t>(std::max(-127.f, std::min(127.f, std::nearbyint(row[p] * inverse))));
    }
  });
}

Error topk_quantized(const float* q, size_t m, const float* projection, size_t r, const int8_t* codes, const float* scales,
                     const float* x, size_t n, size_t d, size_t k, size_t candidates, int32_t* out_idx, float* out_scores,
                     size_t* k_out) {
  const size_t bad_q = first_non_finite(q, m * d);
  if (bad_q < m * d)
    return {Error::non_finite, "query row " + std::to_string(bad_q / d) + ", column " + std::to_string(bad_q % d) +
                                   " is " + (std::isnan(q[bad_q]) ? "NaN" : "infinite")};
  const size_t kk = std::min(k, n);
  *k_out = kk;
  if (kk == 0 || m == 0) return {};
  const size_t pool = std::min(n, std::max(candidates, kk));
  const IsaKernels& kernels = active_kernels();

  // The queries as the codes see them (projected when the codes are), then in int16 (their int8
  // codes, widened for the multiply) with their scales.
  std::vector<float> projected;
  const float* qc = q;
  if (projection) {
    projected.resize(m * r);
    for (size_t i = 0; i < m; ++i) kernels.row_dots(q + i * d, projection, r, d, projected.data() + i * r, nullptr);
    qc = projected.data();
  }
  std::vector<int16_t> q16(m * r);
  std::vector<float> q_scale(m);
  for (size_t i = 0; i < m; ++i) {
    float largest = 0.f;
    for (size_t p = 0; p < r; ++p) largest = std::max(largest, std::fabs(qc[i * r + p]));
    q_scale[i] = largest > 0.f ? largest / 127.f : 1.f;
    for (size_t p = 0; p < r; ++p) q16[i * r + p] = static_cast<int16_t>(std::nearbyint(qc[i * r + p] / q_scale[i]));
  }

  // Approximate scores of every row: a quarter of the bytes of the fp32 scan (r / 4d projected).
  const size_t threads = std::max<size_t>(1, std::min(threads_for(double(m) * n * r / 4), (n + kChunkRows - 1) / kChunkRows));
  std::vector<TopkSink> sinks(threads, TopkSink(m, pool));
  fork_join(threads, [&](size_t t) {
    std::vector<int64_t> dots(kChunkRows);
    const size_t end = n * (t + 1) / threads;
    for (size_t r0 = n * t / threads; r0 < end; r0 += kChunkRows) {
      const size_t count = std::min(kChunkRows, end - r0);
      for (size_t i = 0; i < m; ++i) {
        kernels.row_dots_i8(q16.data() + i * r, codes + r0 * r, count, r, dots.data());
        for (size_t j = 0; j < count; ++j) sinks[t].offer(i, static_cast<int32_t>(r0 + j), float(dots[j]) * q_scale[i] * scales[r0 + j]);
      }
    }
  });

  // Exact fp32 scores for the candidates, then the k best.
  std::vector<Candidate> merged;
  for (size_t i = 0; i < m; ++i) {
    merged.clear();
    for (const TopkSink& s : sinks) merged.insert(merged.end(), s.heap.begin() + i * pool, s.heap.begin() + i * pool + s.size[i]);
    std::sort(merged.begin(), merged.end(), better);
    merged.resize(std::min(merged.size(), pool));
    // The candidates' rows lie anywhere in x: asking for all of them first overlaps their misses.
    for (const Candidate& c : merged)
      for (size_t p = 0; p < d; p += 16) __builtin_prefetch(x + size_t(c.index) * d + p);
    for (Candidate& c : merged) {
      kernels.row_dots(q + i * d, x + size_t(c.index) * d, 1, d, &c.score, nullptr);
      if (!std::isfinite(c.score)) return describe_bad_row(x, size_t(c.index), d);
    }
    std::partial_sort(merged.begin(), merged.begin() + kk, merged.end(), better);
    for (size_t j = 0; j < kk; ++j) {
      out_idx[i * kk + j] = merged[j].index;
      out_scores[i * kk + j] = merged[j].score;
    }
  }
  return {};
}

}  // namespace laborspace
