// Boxes in the global index space of a tensor, and the helpers that move bytes
// between boxes. Plain C++: no LibTorch.
//
// A Box is an origin (`offsets`) plus a `sizes` extent per dimension, in global
// coordinates. Rank is dynamic (a 0-D tensor has an empty box of volume 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

using Shape = std::vector<int64_t>;

struct Box {
  Shape offsets;  // inclusive_min per dimension
  Shape sizes;    // extent per dimension; exclusive_max = offsets + sizes

  size_t rank() const { return sizes.size(); }
  int64_t volume() const;
  bool empty() const { return volume() == 0; }
  bool operator==(const Box&) const = default;

  // A box covering all of `shape` (offsets zero).
  static Box whole(const Shape& shape);
};

// The common part of `a` and `b`, or nullopt when they do not overlap
// (or either is empty). REQUIRES: a.rank() == b.rank().
std::optional<Box> intersect(const Box& a, const Box& b);

// True when `inner` lies entirely within `outer`. REQUIRES: equal ranks.
bool contains(const Box& outer, const Box& inner);

int64_t volume(const Shape& shape);

// "[2, 3, 4]" — used in every error message that names a shape.
std::string to_string(const Shape& shape);
// "offsets [0, 4] sizes [2, 4]"
std::string to_string(const Box& box);

// Row-major (C-contiguous) element strides of `sizes`.
Shape contiguous_strides(const Shape& sizes);

// A box laid out in memory: `data` points at the element at box.offsets,
// `strides` are element strides (any sign-free layout LibTorch allows,
// including 0 strides for expanded dims).
struct StridedView {
  Box box;
  std::byte* data = nullptr;  // element at box.offsets (const for sources)
  Shape strides;              // element strides, one per dimension

  // A dense row-major buffer holding exactly `box`.
  static StridedView dense(const Box& box, std::byte* data);
};

// Copy the elements of `region` from `src` to `dst`. `region` must lie in both
// boxes. Elements are `elem_size` bytes; runs that are contiguous in both
// layouts are copied with memcpy.
void copy_region(const Box& region, const StridedView& src, const StridedView& dst,
                 size_t elem_size);

}  // namespace tessera
