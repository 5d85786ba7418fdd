#include "tessera/state_dict.h"

#include "geometry/box.h"
#include "tessera/error.h"
#include "tessera/tensor_source.h"

namespace tessera {

TensorView TensorView::contiguous(std::string dtype, size_t elem_size, void* data, Shape sizes) {
  TensorView v;
  v.dtype = std::move(dtype);
  v.elem_size = elem_size;
  v.data = static_cast<std::byte*>(data);
  v.strides = contiguous_strides(sizes);
  v.global_shape = sizes;
  v.offsets = Shape(sizes.size(), 0);
  v.sizes = std::move(sizes);
  return v;
}

TensorView TensorView::as_shard(Shape global, Shape offs) const {
  TensorView v = *this;
  v.global_shape = std::move(global);
  v.offsets = std::move(offs);
  return v;
}

TensorView TensorView::as_replica(int64_t index, int64_t count) const {
  TensorView v = *this;
  v.replica_index = index;
  v.replica_count = count;
  return v;
}

bool TensorEntry::staged() const { return source && source->staged(); }

void StateDict::add_tensor(const std::string& name, TensorView view) {
  TensorEntry entry;
  entry.view = std::move(view);
  add_tensor(name, std::move(entry));
}

void StateDict::add_tensor(const std::string& name, TensorEntry entry) {
  if (name.empty()) throw InvalidArgument("state dict: entry names must not be empty");
  entries_[name] = std::move(entry);
}

void StateDict::add_value(const std::string& name, Value value) {
  if (name.empty()) throw InvalidArgument("state dict: entry names must not be empty");
  entries_[name] = std::move(value);
}

const Value& StateDict::value(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !std::holds_alternative<Value>(it->second))
    throw NotFoundError("state dict has no value '" + name + "'");
  return std::get<Value>(it->second);
}

const TensorEntry& StateDict::tensor(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !std::holds_alternative<TensorEntry>(it->second))
    throw NotFoundError("state dict has no tensor '" + name + "'");
  return std::get<TensorEntry>(it->second);
}

}  // namespace tessera
