// Fork-join helper: runs fn(t) for t in [0, threads) with the caller taking t = 0. Threads are
// started per call: a start costs ~20 us, and callers only ask for threads when the work is
// large enough (milliseconds) for that to vanish.
#pragma once
#include <cstddef>
#include <thread>
#include <vector>

namespace laborspace {

template <class Fn>
void fork_join(size_t threads, Fn&& fn) {
  if (threads <= 1) {
    fn(size_t(0));
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) pool.emplace_back([&fn, t] { fn(t); });
  fn(size_t(0));
  for (auto& th : pool) th.join();
}

// Threads worth using for `work` multiply-adds: one per ~2M, at most thread_count().
size_t threads_for(double work);

}  // namespace laborspace
