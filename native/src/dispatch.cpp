// Run-time choice of instruction set and thread count.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "kernels.h"
#include "parallel.h"

namespace laborspace {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (name == isa_name(isa)) {
      *out = isa;
      return true;
    }
  return false;
}

bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  // libgcc's checks include the OS (XGETBV) saving the wider registers.
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return isa == Isa::scalar;
#endif
}

namespace {

const IsaKernels* table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kernels_avx512();
    case Isa::avx2: return kernels_avx2();
    default: return &kernels_scalar();
  }
}

const IsaKernels* best_table() {
  // LABORSPACE_ISA caps the choice (e.g. to compare ISAs from the command line).
  Isa cap = Isa::avx512;
  if (const char* env = std::getenv("LABORSPACE_ISA")) isa_from_name(env, &cap);
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (static_cast<int>(isa) <= static_cast<int>(cap))
      if (const IsaKernels* t = table_for(isa)) return t;
  return &kernels_scalar();
}

std::atomic<const IsaKernels*> active{nullptr};

size_t default_threads() {
  if (const char* env = std::getenv("LABORSPACE_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1) return static_cast<size_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<size_t> threads{0};

}  // namespace

const IsaKernels& active_kernels() {
  const IsaKernels* t = active.load(std::memory_order_acquire);
  if (!t) {
    t = best_table();
    active.store(t, std::memory_order_release);
  }
  return *t;
}

bool set_active_isa(Isa isa) {
  const IsaKernels* t = table_for(isa);
  if (!t) return false;
  active.store(t, std::memory_order_release);
  return true;
}

size_t thread_count() {
  size_t n = threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_thread_count(size_t n) { threads.store(std::max<size_t>(1, n), std::memory_order_relaxed); }

size_t threads_for(double work) {
  const double per_thread = 2e6;
  return std::max<size_t>(1, std::min<size_t>(thread_count(), static_cast<size_t>(work / per_thread)));
}

}  // namespace laborspace
