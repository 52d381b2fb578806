// Scratch memory kept per thread between calls. A training step needs megabytes of intermediates
// (packed operands, activations, gradients), and a fresh allocation of that size comes back from
// the OS page by page (a fault and a zeroed page each) on every step: it cost as much as the
// products. Requests above kKeepFloats get a one-off allocation instead, so one huge call does
// not pin its memory for the life of the thread.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace laborspace {

constexpr size_t kKeepFloats = size_t(1) << 20;  // 4 MB
// The memory starts on a cache line. malloc aligns to 16 bytes only (a large block sits 16 bytes
// past a page), and then every 64-byte vector load of a packed GEMM panel spans two lines: on an
// Intel Xeon the AVX-512 micro-kernel ran 15-20% slower so.
constexpr size_t kLineBytes = 64;
constexpr size_t kLineFloats = kLineBytes / sizeof(float);

// n floats, uninitialised: `kept` (a thread_local buffer of the caller's) when n is small enough.
class Scratch {
 public:
  Scratch(std::vector<float>& kept, size_t n) {
    float* raw;
    if (n <= kKeepFloats) {
      if (kept.size() < n + kLineFloats) kept.resize(n + kLineFloats);
      raw = kept.data();
    } else {
      owned_.reset(new float[n + kLineFloats]);
      raw = owned_.get();
    }
    void* start = raw;
    size_t space = (n + kLineFloats) * sizeof(float);
    data_ = static_cast<float*>(std::align(kLineBytes, n * sizeof(float), start, space));
  }
  float* get() const { return data_; }
  float& operator[](size_t i) const { return data_[i]; }

 private:
  std::unique_ptr<float[]> owned_;
  float* data_ = nullptr;
};

}  // namespace laborspace
