#include "io/thread_pool.h"

#include <algorithm>
#include <string>

#include "tessera/error.h"

namespace tessera::io {

ThreadPool::ThreadPool(size_t threads) {
  if (threads > kMaxThreads)
    throw InvalidArgument("threads must be between 0 (one per core) and " + std::to_string(kMaxThreads) + ", got " +
                          std::to_string(threads));
  if (threads == 0) threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxThreads);
  // The caller also works, so start one fewer thread.
  for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work() {
  uint64_t seen = 0;
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || (generation_ != seen && next_ < total_); });
    if (stop_) return;
    seen = generation_;
    while (job_ && next_ < total_) {
      size_t i = next_++;
      const auto* job = job_;
      bool skip = static_cast<bool>(error_);
      lock.unlock();
      std::exception_ptr err;
      if (!skip) {
        try {
          (*job)(i);
        } catch (...) {
          err = std::current_exception();
        }
      }
      lock.lock();
      if (err && !error_) error_ = err;
      if (++finished_ == total_) done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  std::lock_guard call(call_mu_);
  std::unique_lock lock(mu_);
  job_ = &fn;
  next_ = 0;
  total_ = n;
  finished_ = 0;
  error_ = nullptr;
  ++generation_;
  wake_.notify_all();
  while (next_ < total_) {
    size_t i = next_++;
    bool skip = static_cast<bool>(error_);
    lock.unlock();
    std::exception_ptr err;
    if (!skip) {
      try {
        fn(i);
      } catch (...) {
        err = std::current_exception();
      }
    }
    lock.lock();
    if (err && !error_) error_ = err;
    ++finished_;
  }
  done_.wait(lock, [&] { return finished_ == total_; });
  job_ = nullptr;
  total_ = 0;
  auto err = error_;
  error_ = nullptr;
  lock.unlock();
  if (err) std::rethrow_exception(err);
}

}  // namespace tessera::io
