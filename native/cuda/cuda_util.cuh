// Error checking and owned device buffers shared by the CUDA files.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

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

}  // namespace laborspace::cuda
