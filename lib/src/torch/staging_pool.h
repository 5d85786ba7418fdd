// Host memory for staging tensors before a background save: pinned when a
// CUDA device is present (fast, truly asynchronous device-to-host copies),
// pageable otherwise. Kept across saves, so only the first save pins memory.
//
// Memory comes in blocks of kBlockBytes (256 MiB). PyTorch's caching host
// allocator rounds pinned requests up to a power of two, so blocks of a
// power-of-two size waste nothing; a tensor larger than a block gets a block
// of its own (rounded up to a power of two: at most 2x for such tensors).
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace tessera {

class StagingPool;

// Staging for one save: one byte region per requested size. Returns its
// blocks to the pool when destroyed.
class StagingLease {
 public:
  ~StagingLease();
  // The i-th requested region (uint8, contiguous, of the requested length).
  at::Tensor region(size_t i) const;

 private:
  friend class StagingPool;
  struct Place {
    size_t block;
    uint64_t offset, bytes;
  };
  StagingPool* pool_ = nullptr;
  std::vector<at::Tensor> blocks_;
  std::vector<Place> places_;
};

class StagingPool {
 public:
  static constexpr uint64_t kBlockBytes = 256ull << 20;
  static constexpr uint64_t kAlign = 4096;
  static constexpr size_t kAllocThreads = 8;

  // max_bytes == 0: bounded by the largest lease requested so far.
  explicit StagingPool(uint64_t max_bytes, bool pinned);

  // Regions of the given sizes, packed into blocks. Waits while the pool's
  // bound is taken by other leases; throws InvalidArgument if the request
  // alone exceeds a non-zero bound.
  std::unique_ptr<StagingLease> acquire(const std::vector<uint64_t>& sizes);

  uint64_t held_bytes() const;

 private:
  friend class StagingLease;
  void release(std::vector<at::Tensor> blocks);
  at::Tensor allocate(uint64_t bytes);

  const uint64_t max_bytes_;
  const bool pinned_;
  uint64_t largest_need_ = 0;
  mutable std::mutex mu_;
  std::condition_variable released_;
  std::multimap<uint64_t, at::Tensor> free_;  // by block size
  uint64_t held_ = 0;                         // bytes in free_ and in leases
};

}  // namespace tessera
