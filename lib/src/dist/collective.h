// A process group as the replicated-load protocol (dist/replicated_load.h)
// uses it, LibTorch-free. torch/replicated_load.cc backs it with a
// c10d::Backend (NCCL for CUDA tensors, Gloo for CPU tensors); the tensors
// stay on its side, named here by the handles hold() returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/state_dict.h"

namespace tessera::dist {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;

  // Takes the tensor of replicated entry `name` into the collective's care
  // (a contiguous one itself, else a contiguous temporary copied back by
  // finish()) and returns its handle.
  virtual size_t hold(const std::string& name, const TensorEntry& entry) = 0;
  // Adds to `state`, as entry `name`, rows [begin, end) of dimension 0 of
  // held tensor `handle` (the whole tensor when it is 0-D), placed at
  // `offsets` of a global tensor of `global_shape`: where a load lands them.
  virtual void add_rows(StateDict& state, const std::string& name, size_t handle, int64_t begin, int64_t end,
                        const Shape& global_shape, const Shape& offsets) = 0;

  // Every rank's `mine` (the same length on every rank), in rank order.
  virtual std::vector<std::vector<int64_t>> allgather(const std::vector<int64_t>& mine) = 0;
  // Queues a broadcast, from rank `root`, of rows [begin, end) of dimension 0
  // of held tensor `handle` (of the whole tensor, [0, 1), when it is 0-D).
  virtual void broadcast(size_t handle, int64_t begin, int64_t end, int64_t root) = 0;
  // Waits for the queued broadcasts, then copies temporaries back into their
  // entries' tensors.
  virtual void finish() = 0;
};

}  // namespace tessera::dist
