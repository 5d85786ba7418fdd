// The chunk grid of a tensor: a regular grid over its global shape, computed
// from the shape, the element size and a target chunk size alone — never from
// the layout that saves it. The same weights saved from 4 or 64 ranks therefore
// produce the same chunks, and their ids deduplicate across checkpoints.
//
// Rule: start with one cell covering the tensor; while a cell holds more than
// `target_bytes`, halve (rounding up) the dimension whose cell extent is
// largest, preferring the lower dimension on ties. Halving keeps power-of-two
// splits (TP/FSDP halves, quarters, ... along dim 0 or the last dim) on cell
// edges.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "geometry/box.h"

namespace tessera {

class ChunkGrid {
 public:
  // REQUIRES: elem_size > 0, target_bytes > 0, every extent >= 0.
  ChunkGrid(const Shape& global_shape, size_t elem_size, int64_t target_bytes);

  const Shape& global_shape() const { return shape_; }
  const Shape& cell_shape() const { return cell_; }

  // Calls `fn(cell ∩ box)` for every grid cell that intersects `box`, in
  // row-major cell order. `box` must lie within the global shape.
  void for_each_piece(const Box& box, const std::function<void(const Box&)>& fn) const;

  // The grid cell holding the element at `index`.
  Box cell_containing(const Shape& index) const;

 private:
  Shape shape_;
  Shape cell_;
};

}  // namespace tessera
