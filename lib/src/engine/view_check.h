// Validation of TensorViews shared by save and load: errors name the entry.
#pragma once

#include <string>

#include "geometry/box.h"
#include "tessera/state_dict.h"

namespace tessera::engine {

// Throws InvalidArgument naming `name` when the view is malformed: ranks that
// disagree, negative extents, a shard outside its global shape, no data
// (unless `require_data` is false: an entry staged later).
void check_view(const std::string& name, const TensorView& view, bool require_data = true);

// check_view for a view that a load fills, which must also give each element
// its own memory: an expanded view (stride 0 in a dimension of more than one
// element, as torch's expand() makes) is refused, naming the entry (it
// could hold only one of the values loaded into it).
void check_load_target(const std::string& name, const TensorView& view, bool require_data = true);

// The shard's box in global coordinates, and its memory layout.
inline Box local_box(const TensorView& v) { return Box{v.offsets, v.sizes}; }
inline StridedView strided(const TensorView& v) { return StridedView{local_box(v), v.data, v.strides}; }

}  // namespace tessera::engine
