#include "engine/view_check.h"

#include "tessera/error.h"

namespace tessera::engine {

void check_view(const std::string& name, const TensorView& v, bool require_data) {
  auto bad = [&](const std::string& why) { return InvalidArgument("tensor '" + name + "': " + why); };
  if (v.dtype.empty() || v.elem_size == 0) throw bad("dtype and element size are required");
  const size_t rank = v.global_shape.size();
  if (v.sizes.size() != rank || v.offsets.size() != rank || v.strides.size() != rank)
    throw bad("local sizes " + to_string(v.sizes) + ", offsets " + to_string(v.offsets) + " and strides " +
              to_string(v.strides) + " must all have the rank of the global shape " + to_string(v.global_shape));
  for (size_t d = 0; d < rank; ++d) {
    if (v.global_shape[d] < 0 || v.sizes[d] < 0 || v.offsets[d] < 0 || v.strides[d] < 0)
      throw bad("negative extent, offset or stride in dimension " + std::to_string(d));
    if (v.offsets[d] + v.sizes[d] > v.global_shape[d])
      throw bad("shard " + to_string(local_box(v)) + " does not fit the global shape " + to_string(v.global_shape) +
                " (dimension " + std::to_string(d) + ")");
  }
  if (require_data && volume(v.sizes) > 0 && v.data == nullptr) throw bad("no data");
  if (v.replica_count < 1 || v.replica_index < 0 || v.replica_index >= v.replica_count)
    throw bad("replica index " + std::to_string(v.replica_index) + " of " + std::to_string(v.replica_count) +
              " is out of range");
}

void check_load_target(const std::string& name, const TensorView& v, bool require_data) {
  check_view(name, v, require_data);
  for (size_t d = 0; d < v.sizes.size(); ++d)
    if (v.strides[d] == 0 && v.sizes[d] > 1)
      throw InvalidArgument("tensor '" + name + "': an expanded view (stride 0 in dimension " + std::to_string(d) +
                            " of size " + std::to_string(v.sizes[d]) +
                            ") cannot be loaded into: its elements share memory");
}

}  // namespace tessera::engine
