// A fixed pool of worker threads with one primitive: run a batch of indexed
// tasks and wait for all of them, rethrowing the first exception.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tessera/limits.h"

namespace tessera::io {

// The limit is checked here, where threads start, so every caller gets it.
using tessera::kMaxThreads;

class ThreadPool {
 public:
  // threads == 0 means std::thread::hardware_concurrency() (at most
  // kMaxThreads). Throws InvalidArgument naming the `threads` option when
  // threads > kMaxThreads, before starting any.
  explicit ThreadPool(size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The threads this pool started: one fewer than asked for, since the
  // caller of parallel_for runs tasks too.
  size_t workers() const { return workers_.size(); }

  // One batch at a time: concurrent callers queue; REQUIRES: fn does not call
  // parallel_for on the same pool.
  // Runs fn(0) ... fn(n-1) on the pool (and the calling thread) and returns
  // when all have finished. If any throws, the rest still run or are skipped,
  // and the first exception is rethrown here.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void work();

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serializes parallel_for callers
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t)>* job_ = nullptr;
  size_t next_ = 0, total_ = 0, finished_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace tessera::io
