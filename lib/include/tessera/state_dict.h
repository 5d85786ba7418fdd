// The state dict: what a job hands to save and load. Named entries, each a
// tensor (whole, or one shard of a global tensor) or a small value.
//
// This header is LibTorch-free: tensors are described by TensorView (a
// pointer, sizes, strides, dtype name). `tessera/torch.h` builds entries from
// at::Tensor, including CUDA tensors and casts, with a TensorSource behind them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "tessera/value.h"

namespace tessera {

using Shape = std::vector<int64_t>;
// "[2, 3]"; "[]" for a scalar.
std::string to_string(const Shape& shape);

// A host tensor in memory, placed in a global tensor.
struct TensorView {
  std::string dtype;      // LibTorch's dtype name: "float32", "bfloat16", "int64", ...
  size_t elem_size = 0;   // bytes per element
  std::byte* data = nullptr;  // the local element at index 0 (may be null when empty)
  Shape sizes;            // local sizes
  Shape strides;          // local element strides (any LibTorch layout, 0 for expanded dims)
  Shape global_shape;     // shape of the whole tensor
  Shape offsets;          // where the local box starts in the global tensor
  // Several ranks may hold the same box (data-parallel replicas). Each names
  // its index among the `replica_count` holders; the box's chunks are then
  // split between them (chunk k is written by replica k % replica_count), so
  // each chunk is written once, with no communication. Default: not replicated.
  int64_t replica_index = 0;
  int64_t replica_count = 1;

  // A whole, contiguous tensor.
  static TensorView contiguous(std::string dtype, size_t elem_size, void* data, Shape sizes);
  // This view as a shard at `offsets` of a global tensor of `global_shape`.
  TensorView as_shard(Shape global_shape, Shape offsets) const;
  // This view as replica `index` of `count` ranks holding the same box.
  TensorView as_replica(int64_t index, int64_t count) const;
};

class TensorSource;  // tessera/tensor_source.h

// One tensor entry: a view, and what stands behind it when its bytes are not
// plain host memory (see tessera/tensor_source.h).
struct TensorEntry {
  // Where the tensor sits in the global tensor, and its local bytes. For a
  // staged source (a CUDA tensor), `data` may be null: the source provides
  // host views when bytes must move.
  TensorView view;
  // Null: `view` is plain host memory the caller keeps alive for the save or
  // load. Copies of the entry share the source.
  std::shared_ptr<TensorSource> source;

  // Whether the bytes pass through the source's host staging (source &&
  // source->staged()).
  bool staged() const;
};

class StateDict {
 public:
  using Entry = std::variant<TensorEntry, Value>;

  // Adds or replaces an entry. Names are the checkpoint's keys
  // (e.g. "model.layers.0.attn.q_proj.weight"); REQUIRES: non-empty.
  void add_tensor(const std::string& name, TensorView view);
  void add_tensor(const std::string& name, TensorEntry entry);
  void add_value(const std::string& name, Value value);

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  size_t size() const { return entries_.size(); }
  void erase(const std::string& name) { entries_.erase(name); }

  // Values are filled in by load; throws NotFoundError for unknown names.
  const Value& value(const std::string& name) const;
  const TensorEntry& tensor(const std::string& name) const;

  const std::map<std::string, Entry>& entries() const { return entries_; }
  std::map<std::string, Entry>& entries() { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace tessera
