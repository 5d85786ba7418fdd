// The state dict: what a job hands to save and load. Named entries, each a
// tensor (whole, or one shard of a global tensor) or a small value.
//
// This header is LibTorch-free: tensors are described by TensorView (a
// pointer, sizes, strides, dtype name). `tessera/torch.h` builds views from
// at::Tensor, including CUDA tensors and casts.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <functional>
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

// One tensor entry. The hooks let the LibTorch layer stage device tensors
// and casts through host memory; plain host tensors leave them empty.
struct TensorEntry {
  // Where the tensor sits in the global tensor, and its local bytes. For a
  // tensor the host cannot address (CUDA), `data` is null and the hooks
  // below provide host views when bytes must move.
  TensorView view;
  // Save only: returns the host view whose bytes are saved (e.g. a CUDA
  // tensor copied into pinned host staging). Called at most once per save,
  // lazily, by the worker thread that first needs the entry's bytes; workers
  // take entries in name order, so the copies of later entries overlap the
  // hashing and writing of earlier ones. Not called when this rank writes
  // none of the entry's pieces. Must be safe to call from any thread; may
  // block (e.g. until staging memory is free).
  std::function<TensorView()> stage_for_save;
  // Save only: called once every piece of the staged view has been hashed
  // and written (or found in the store), so its staging memory may be
  // reused; from a worker thread. A failing save may skip it (the caller
  // then reclaims its staging itself).
  std::function<void()> after_save;
  // Load only: returns the host view the saved bytes land in when
  // `view.data` is not host memory (e.g. pinned staging for a CUDA tensor).
  std::function<TensorView()> load_target;
  // Load only: called when the saved dtype differs from view.dtype and the
  // caller allowed casts; returns a view in the saved dtype to load into.
  std::function<TensorView(const std::string& saved_dtype)> cast_target;
  // Load only: called after the entry's bytes have landed (and verified);
  // `cast` is true when they landed in the view cast_target returned.
  std::function<void(bool cast)> finish_load;
  // Keeps staging buffers alive as long as the entry.
  std::shared_ptr<void> keep_alive;
  // The object the view was taken from, for layers that can copy it faster
  // themselves (the LibTorch layer stores the at::Tensor; async save reads it).
  std::any source;
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
