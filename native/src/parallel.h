// Fork-join over a persistent pool of worker threads. A training step issues a dozen products of a
// few hundred microseconds each; starting threads per call (~20-35 us each) cost more than the
// products gained from them at these sizes, so workers are kept and woken instead.
#pragma once
#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace laborspace {

// Runs call(ctx, t) for t in [0, threads), the caller taking t = 0, and returns when all are done.
// One run at a time uses the pool; a concurrent or nested run, or one from a thread marked by
// use_own_threads_here, gets threads of its own instead.
void run_parallel(size_t threads, void (*call)(void*, size_t), void* ctx);

// Marks the calling thread as one of several that run kernels side by side (libuv's threads, for
// the async bindings): its parallel runs start threads of their own instead of waking the pool,
// whose spinning workers would compete with the other callers for the cores (under concurrent
// server load that doubled the p99 latency of a query).
void use_own_threads_here();

// fn(t) for t in [0, threads).
template <class Fn>
void fork_join(size_t threads, Fn&& fn) {
  if (threads <= 1) {
    fn(size_t(0));
    return;
  }
  using F = std::remove_reference_t<Fn>;
  run_parallel(threads, [](void* ctx, size_t t) { (*static_cast<F*>(ctx))(t); },
               const_cast<void*>(static_cast<const void*>(&fn)));
}

// Threads worth using for `work` multiply-adds: one per ~2M, at most thread_count().
size_t threads_for(double work);

// fn(i) for rows i in [0, n), split in contiguous ranges over the threads the work is worth.
template <class Fn>
void for_rows(size_t n, double work_per_row, Fn&& fn) {
  const size_t threads = n < 2 ? 1 : std::min(n, threads_for(double(n) * work_per_row));
  fork_join(threads, [&](size_t t) {
    for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) fn(i);
  });
}

}  // namespace laborspace
