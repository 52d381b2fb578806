// The worker pool behind fork_join (parallel.h). Workers spin briefly after a run, because the
// next product of a training step usually follows within microseconds, then sleep on a condition
// variable. The job word carries a run counter and the run's width together, so a worker reads
// both in one load and never acts on a half-published run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LABORSPACE_PAUSE() _mm_pause()
#else
#define LABORSPACE_PAUSE() std::this_thread::yield()
#endif

#include "kernels.h"
#include "parallel.h"

namespace laborspace {
namespace {

constexpr uint64_t kWidthBits = 16;
constexpr uint64_t kWidthMask = (uint64_t(1) << kWidthBits) - 1;
constexpr auto kSpinFor = std::chrono::microseconds(50);

// The first exception thrown by any thread of a run, rethrown to the caller once all are done: an
// exception escaping a worker would call std::terminate (and leave the pool busy).
class FirstError {
 public:
  template <class Fn>
  void capture(Fn&& fn) noexcept {
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      if (!error_) error_ = std::current_exception();
    }
  }
  std::exception_ptr take() { return std::exchange(error_, nullptr); }

 private:
  std::mutex m_;
  std::exception_ptr error_;
};

struct Pool {
  std::atomic<bool> busy{false};     // a run holds the pool
  std::atomic<uint64_t> job{0};      // (run counter << kWidthBits) | width
  std::atomic<size_t> remaining{0};  // workers of the current run still working
  void (*call)(void*, size_t) = nullptr;
  void* ctx = nullptr;
  FirstError error;
  size_t workers = 0;  // started so far; they live until the process exits
  std::mutex m;
  std::condition_variable wake;
};

// Never destroyed: detached workers may still be waiting on it while the process exits.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

void work(Pool& p, size_t index, uint64_t seen) {
  for (;;) {
    uint64_t job = p.job.load(std::memory_order_acquire);
    const auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
    for (unsigned spins = 0; job == seen; job = p.job.load(std::memory_order_acquire)) {
      if ((++spins & 63) != 0 || std::chrono::steady_clock::now() < spin_until) {
        LABORSPACE_PAUSE();
        continue;
      }
      std::unique_lock<std::mutex> lock(p.m);
      p.wake.wait(lock, [&] { return p.job.load(std::memory_order_acquire) != seen; });
    }
    seen = job;
    if (index < (job & kWidthMask)) {
      p.error.capture([&] { p.call(p.ctx, index); });
      p.remaining.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void run_on_own_threads(size_t threads, void (*call)(void*, size_t), void* ctx) {
  FirstError error;
  std::vector<std::thread> own;
  own.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) {
    try {
      own.emplace_back([&error, call, ctx, t] { error.capture([&] { call(ctx, t); }); });
    } catch (...) {  // no thread could start: this one does the rest of the work
      for (size_t rest = t; rest < threads; ++rest) error.capture([&] { call(ctx, rest); });
      break;
    }
  }
  error.capture([&] { call(ctx, 0); });
  for (auto& th : own) th.join();
  if (std::exception_ptr e = error.take()) std::rethrow_exception(e);
}

thread_local bool own_threads = false;

}  // namespace

void use_own_threads_here() { own_threads = true; }

void run_parallel(size_t threads, void (*call)(void*, size_t), void* ctx) {
  if (threads <= 1) {
    call(ctx, 0);
    return;
  }
  Pool& p = pool();
  if (own_threads || threads > kWidthMask || p.busy.exchange(true, std::memory_order_acquire)) {
    run_on_own_threads(threads, call, ctx);
    return;
  }
  const uint64_t previous = p.job.load(std::memory_order_relaxed);
  for (; p.workers + 1 < threads; ++p.workers) {
    try {
      std::thread(work, std::ref(p), p.workers + 1, previous).detach();
    } catch (...) {  // no more threads (a process limit): the caller runs the parts no worker takes
      break;
    }
  }
  const size_t width = std::min(threads, p.workers + 1);
  p.call = call;
  p.ctx = ctx;
  p.remaining.store(width - 1, std::memory_order_relaxed);
  {
    // Published under the mutex so a worker about to sleep cannot miss it.
    std::lock_guard<std::mutex> lock(p.m);
    p.job.store((((previous >> kWidthBits) + 1) << kWidthBits) | width, std::memory_order_release);
  }
  p.wake.notify_all();
  p.error.capture([&] { call(ctx, 0); });
  for (size_t t = width; t < threads; ++t) p.error.capture([&] { call(ctx, t); });  // parts no worker took
  for (unsigned spins = 0; p.remaining.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) LABORSPACE_PAUSE();
    else std::this_thread::yield();  // a worker was descheduled: give it the core
  }
  // Taken before the pool is released, so the next run cannot mix its error with this one's.
  const std::exception_ptr error = p.error.take();
  p.busy.store(false, std::memory_order_release);
  if (error) std::rethrow_exception(error);
}

}  // namespace laborspace
