// Counts an operation's bytes from many threads and calls its ProgressFn on
// the first bytes, then at most every kInterval (tessera/progress.h says
// what the callback sees).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string_view>

#include "tessera/progress.h"

namespace tessera::io {

class ProgressMeter {
 public:
  static constexpr std::chrono::milliseconds kInterval{100};

  // `fn` may be empty: then add() and finish() do nothing.
  ProgressMeter(const ProgressFn& fn, std::string_view operation, uint64_t total_bytes)
      : fn_(fn), operation_(operation), total_(total_bytes), start_(Clock::now()), next_(start_) {}

  void add(uint64_t bytes) {
    if (!fn_) return;
    const uint64_t done = done_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    const auto now = Clock::now();
    if (now < next_.load(std::memory_order_relaxed)) return;
    std::unique_lock lock(mu_, std::try_to_lock);  // another thread is reporting: skip this one
    if (!lock.owns_lock() || now < next_.load(std::memory_order_relaxed) || finished_) return;
    next_.store(now + kInterval, std::memory_order_relaxed);
    report(done, now, false);
  }

  // The closing report (once; later calls do nothing).
  void finish() {
    if (!fn_) return;
    std::lock_guard lock(mu_);
    if (finished_) return;
    finished_ = true;
    report(done_.load(), Clock::now(), true);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void report(uint64_t done, Clock::time_point now, bool finished) {
    fn_(Progress{operation_, done, total_, std::chrono::duration<double>(now - start_).count(), finished});
  }
  const ProgressFn& fn_;
  std::string_view operation_;
  uint64_t total_;
  Clock::time_point start_;
  std::atomic<Clock::time_point> next_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  bool finished_ = false;
};

}  // namespace tessera::io
