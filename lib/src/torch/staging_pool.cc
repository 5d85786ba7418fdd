#include "torch/staging_pool.h"

#include <c10/util/llvmMathExtras.h>

#include <atomic>
#include <thread>

#include "tessera/error.h"

namespace tessera {
namespace {

uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

}  // namespace

StagingLease::~StagingLease() {
  if (pool_) pool_->release(std::move(blocks_));
}

at::Tensor StagingLease::region(size_t i) const {
  const Place& p = places_.at(i);
  return blocks_[p.block].narrow(0, static_cast<int64_t>(p.offset), static_cast<int64_t>(p.bytes));
}

StagingPool::StagingPool(uint64_t max_bytes, bool pinned) : max_bytes_(max_bytes), pinned_(pinned) {}

uint64_t StagingPool::held_bytes() const {
  std::lock_guard lock(mu_);
  return held_;
}

at::Tensor StagingPool::allocate(uint64_t bytes) {
  return at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).pinned_memory(pinned_));
}

std::unique_ptr<StagingLease> StagingPool::acquire(const std::vector<uint64_t>& sizes) {
  auto lease = std::unique_ptr<StagingLease>(new StagingLease);
  // Lay the regions out: small ones packed into shared blocks in order,
  // large ones in blocks of their own.
  std::vector<uint64_t> block_sizes;
  uint64_t shared_used = kBlockBytes;  // no shared block open yet
  size_t shared_block = 0;
  for (uint64_t n : sizes) {
    const uint64_t need = round_up(std::max<uint64_t>(n, 1), kAlign);
    if (need > kBlockBytes) {
      block_sizes.push_back(c10::llvm::PowerOf2Ceil(need));
      lease->places_.push_back({block_sizes.size() - 1, 0, n});
      continue;
    }
    if (shared_used + need > kBlockBytes) {
      block_sizes.push_back(kBlockBytes);
      shared_block = block_sizes.size() - 1;
      shared_used = 0;
    }
    lease->places_.push_back({shared_block, shared_used, n});
    shared_used += need;
  }
  uint64_t total = 0;
  for (uint64_t b : block_sizes) total += b;

  std::unique_lock lock(mu_);
  if (max_bytes_ != 0 && total > max_bytes_)
    throw InvalidArgument("async save needs " + std::to_string(total) + " bytes of host staging; the pool is limited to " +
                          std::to_string(max_bytes_) + " (AsyncSaverOptions::max_staging_bytes)");
  largest_need_ = std::max(largest_need_, total);
  const uint64_t bound = max_bytes_ != 0 ? max_bytes_ : largest_need_;
  for (;;) {
    uint64_t free_total = 0;
    for (const auto& [size, _] : free_) free_total += size;
    const uint64_t leased = held_ - free_total;
    if (leased + total <= bound) break;
    released_.wait(lock);
  }
  // Reuse free blocks of the right sizes, then drop unmatched free blocks
  // while the pool would exceed its bound, then allocate what is missing.
  std::vector<at::Tensor> blocks(block_sizes.size());
  uint64_t missing = 0;
  for (size_t i = 0; i < block_sizes.size(); ++i) {
    auto it = free_.find(block_sizes[i]);
    if (it == free_.end()) {
      missing += block_sizes[i];
      continue;
    }
    blocks[i] = std::move(it->second);
    free_.erase(it);
  }
  while (held_ + missing > bound && !free_.empty()) {
    held_ -= free_.begin()->first;
    free_.erase(free_.begin());
  }
  // Pinning is slow (the driver zeroes and locks every page, ~2-3 GB/s on
  // one thread), so missing blocks are allocated by several threads at once.
  std::vector<size_t> todo;
  for (size_t i = 0; i < block_sizes.size(); ++i)
    if (!blocks[i].defined()) todo.push_back(i);
  std::exception_ptr failure;
  std::mutex failure_mu;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next++) < todo.size();) {
      try {
        blocks[todo[k]] = allocate(block_sizes[todo[k]]);
      } catch (...) {
        std::lock_guard fl(failure_mu);
        failure = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min<size_t>(todo.size(), kAllocThreads); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  for (size_t i : todo)
    if (blocks[i].defined()) held_ += block_sizes[i];
  if (failure) {  // out of (pinned) memory: keep what exists as free blocks
    for (auto& b : blocks)
      if (b.defined()) free_.emplace(static_cast<uint64_t>(b.numel()), std::move(b));
    std::rethrow_exception(failure);
  }
  lease->blocks_ = std::move(blocks);
  lease->pool_ = this;
  return lease;
}

void StagingPool::release(std::vector<at::Tensor> blocks) {
  {
    std::lock_guard lock(mu_);
    for (auto& b : blocks) free_.emplace(static_cast<uint64_t>(b.numel()), std::move(b));
  }
  released_.notify_all();
}

}  // namespace tessera
