// The CUDA runtime, emulated on the CPU for scripts/check-cuda-emulated.sh: the subset the kernels in
// native/cuda use, so a machine without a GPU runs them and compares them with the CPU kernels.
// A launch runs its blocks one after another, each on blockDim real threads with a barrier for
// __syncthreads; __shared__ memory is one copy per kernel (blocks never overlap); device memory is
// host memory, filled with 0xff bytes (NaN) so that a read before a write shows. What this cannot
// show: races between warps or blocks, the GPU's memory model, its speed.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <tuple>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* emulated_barrier = nullptr;
inline std::vector<float> emulated_shared;  // the launch's dynamic shared memory

inline void __syncthreads() { emulated_barrier->arrive_and_wait(); }
inline float* emulated_dynamic_shared() { return emulated_shared.data(); }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }

// kernel<<<grid, block, shared>>>(args) becomes emulated_launch([&] { kernel(args); }, grid, block,
// shared), with the arguments evaluated once (scripts/cuda-emulate.mjs).
template <class F>
void emulated_launch(F kernel, dim3 grid, dim3 block, size_t shared = 0) {
  gridDim = grid;
  blockDim = block;
  const unsigned threads = block.x * block.y * block.z, blocks = grid.x * grid.y * grid.z;
  emulated_shared.assign(shared / sizeof(float) + 1, NAN);
  std::barrier<> barrier(threads);
  emulated_barrier = &barrier;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      for (unsigned b = 0; b < blocks; ++b) {
        blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / (grid.x * grid.y));
        kernel();
        barrier.arrive_and_wait();  // every thread ends the block before the next begins
      }
    });
  for (std::thread& th : pool) th.join();
}

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
inline const char* cudaGetErrorString(cudaError_t) { return "out of host memory (emulated device)"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  *p = static_cast<T*>(std::malloc(bytes));
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* to, const void* from, size_t bytes, cudaMemcpyKind) {
  std::memcpy(to, from, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* to, int value, size_t bytes) {
  std::memset(to, value, bytes);
  return cudaSuccess;
}
