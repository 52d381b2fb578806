// Error checking and owned device buffers shared by the CUDA files.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>

namespace laborspace::cuda {

struct CudaFailure {
  std::string what;
};

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw CudaFailure{std::string(what) + ": " + cudaGetErrorString(status)};
}

// Device buffer freed on scope exit, so an error mid-way leaks nothing.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t count) {
    if (count) check(cudaMalloc(&ptr, count * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Device memory for work repeated at the same shapes (training steps): it grows to the largest
// size asked for and is kept for the next call, so a step allocates nothing once warm.
template <class T>
struct KeptBuffer {
  T* ptr = nullptr;
  size_t capacity = 0;
  KeptBuffer() = default;
  KeptBuffer(KeptBuffer&& other) noexcept : ptr(std::exchange(other.ptr, nullptr)), capacity(std::exchange(other.capacity, 0)) {}
  KeptBuffer& operator=(KeptBuffer&&) = delete;
  ~KeptBuffer() {
    if (ptr) cudaFree(ptr);
  }
  T* sized(size_t n) {
    if (n > capacity) {
      if (ptr) cudaFree(ptr);
      ptr = nullptr;
      capacity = 0;
      check(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
      capacity = n;
    }
    return ptr;
  }
};

}  // namespace laborspace::cuda
