// The CUDA runtime, emulated on the CPU: the subset the kernels in native/cuda use, so a machine
// without a GPU runs them (scripts/check-cuda-emulated.sh). A launch runs its blocks one after
// another on the calling thread; a block's threads are fibers that switch at __syncthreads, so a
// barrier costs two stack switches per thread instead of waking hundreds of OS threads. __shared__
// memory is one copy per kernel and calling thread (blocks never overlap); device memory is host
// memory, filled with 0xff bytes (NaN) so that a read before a write shows. What this cannot
// show: races between warps or blocks, the GPU's memory model, its speed.
// The same header builds the emulated addon, whose one device lets the tests take the addon's GPU
// paths. There LABORSPACE_EMULATED_CUDA_FAULT, read at every call, makes the device misbehave:
// 'fail', every allocation and copy fails (a GPU that fell over); 'drift', rsqrtf is 10% off
// (a GPU whose results differ from the CPU's).
#pragma once
#include <atomic>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <vector>

using std::isfinite;  // CUDA's device functions are in the global namespace

#define __global__
#define __device__
#define __host__
#define __shared__ static thread_local

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
inline thread_local std::vector<float> emulated_shared;  // the launch's dynamic shared memory

// Switches stacks: saves the callee-saved registers and the stack pointer at *save, takes those at
// load. Weak, so that every file that includes this header may define it. ucontext's swapcontext
// did the same with a system call (the signal mask) and took 85% of the emulation's time.
#if !defined(__x86_64__)
#error "the emulated CUDA runtime switches its fibers with x86-64 code"
#endif
extern "C" void emulated_switch(void** save, void* load);
asm(R"(
  .text
  .weak emulated_switch
  .type emulated_switch, @function
emulated_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
)");

// The running block: one fiber per thread, each with its stack and saved stack pointer, and the
// scheduler's saved stack pointer they return to.
struct EmulatedBlock {
  static constexpr size_t kStack = size_t(64) << 10;
  void* scheduler = nullptr;
  std::vector<void*> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<bool> done;
  const std::function<void()>* kernel = nullptr;
  unsigned current = 0;
};
inline thread_local EmulatedBlock* emulated_block = nullptr;

inline void __syncthreads() {
  EmulatedBlock& b = *emulated_block;
  emulated_switch(&b.fibers[b.current], b.scheduler);
}
inline float* emulated_dynamic_shared() { return emulated_shared.data(); }
[[noreturn]] inline void emulated_fiber_main() {
  EmulatedBlock& b = *emulated_block;
  (*b.kernel)();
  b.done[b.current] = true;
  void* ended = nullptr;  // never resumed: the next block lays the stack out anew
  emulated_switch(&ended, b.scheduler);
  __builtin_unreachable();
}
// A fresh fiber's stack as emulated_switch leaves one: six zero registers, then the return into
// emulated_fiber_main, whose stack is then aligned as after a call.
inline void* emulated_fiber_stack(char* stack) {
  auto top = reinterpret_cast<uintptr_t>(stack + EmulatedBlock::kStack) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<void**>(top - 64);
  for (int r = 0; r < 6; ++r) slot[r] = nullptr;
  slot[6] = reinterpret_cast<void*>(&emulated_fiber_main);
  slot[7] = nullptr;
  return slot;
}

// kernel<<<grid, block, shared>>>(args) becomes emulated_launch([&] { kernel(args); }, grid, block,
// shared), with the arguments evaluated once (scripts/cuda-emulate.mjs). Each round resumes every
// live fiber until it reaches the next barrier or ends; a block ends when all have ended.
template <class F>
void emulated_launch(F kernel_body, dim3 grid, dim3 block, size_t shared = 0) {
  gridDim = grid;
  blockDim = block;
  const unsigned threads = block.x * block.y * block.z, blocks = grid.x * grid.y * grid.z;
  emulated_shared.assign(shared / sizeof(float) + 1, NAN);
  const std::function<void()> kernel = kernel_body;
  EmulatedBlock b;
  b.kernel = &kernel;
  b.fibers.resize(threads);
  for (unsigned t = 0; t < threads; ++t) b.stacks.emplace_back(new char[EmulatedBlock::kStack]);
  emulated_block = &b;  // kernels launch no kernels, so blocks never nest
  for (unsigned bi = 0; bi < blocks; ++bi) {
    blockIdx = dim3(bi % grid.x, (bi / grid.x) % grid.y, bi / (grid.x * grid.y));
    b.done.assign(threads, false);
    for (unsigned t = 0; t < threads; ++t) b.fibers[t] = emulated_fiber_stack(b.stacks[t].get());
    for (bool live = true; live;) {
      live = false;
      for (unsigned t = 0; t < threads; ++t) {
        if (b.done[t]) continue;
        b.current = t;
        threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
        emulated_switch(&b.scheduler, b.fibers[t]);
        live = live || !b.done[t];
      }
    }
  }
  emulated_block = nullptr;
}

inline bool emulated_fault(const char* kind) {
  const char* fault = std::getenv("LABORSPACE_EMULATED_CUDA_FAULT");
  return fault && std::strcmp(fault, kind) == 0;
}
inline float rsqrtf(float x) { return (emulated_fault("drift") ? 1.1f : 1.f) / std::sqrt(x); }
inline int atomicMin(int* at, int value) {
  std::atomic_ref<int> cell(*at);
  int old = cell.load();
  while (value < old && !cell.compare_exchange_weak(old, value)) {
  }
  return old;
}

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorIllegalAddress = 700 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? "out of memory (emulated device)" : "an illegal memory access was encountered (emulated device)";
}
inline cudaError_t cudaGetLastError() { return emulated_fault("fail") ? cudaErrorIllegalAddress : cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::strcpy(prop->name, "emulated CUDA device (the CPU)");
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  *p = emulated_fault("fail") ? nullptr : static_cast<T*>(std::malloc(bytes));
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* to, const void* from, size_t bytes, cudaMemcpyKind) {
  if (emulated_fault("fail")) return cudaErrorIllegalAddress;
  std::memcpy(to, from, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* to, int value, size_t bytes) {
  if (emulated_fault("fail")) return cudaErrorIllegalAddress;
  std::memset(to, value, bytes);
  return cudaSuccess;
}
