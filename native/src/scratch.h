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

// n floats, uninitialised: `kept` (a thread_local buffer of the caller's) when n is small enough.
class Scratch {
 public:
  Scratch(std::vector<float>& kept, size_t n) {
    if (n <= kKeepFloats) {
      if (kept.size() < n) kept.resize(n);
      data_ = kept.data();
    } else {
      owned_.reset(new float[n]);
      data_ = owned_.get();
    }
  }
  float* get() const { return data_; }
  float& operator[](size_t i) const { return data_[i]; }

 private:
  std::unique_ptr<float[]> owned_;
  float* data_ = nullptr;
};

}  // namespace laborspace
