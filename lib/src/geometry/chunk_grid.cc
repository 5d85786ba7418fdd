#include "geometry/chunk_grid.h"

#include <algorithm>
#include <stdexcept>

namespace tessera {

ChunkGrid::ChunkGrid(const Shape& global_shape, size_t elem_size, int64_t target_bytes)
    : shape_(global_shape), cell_(global_shape) {
  if (elem_size == 0 || target_bytes <= 0) throw std::invalid_argument("ChunkGrid: bad sizes");
  for (int64_t& c : cell_) c = std::max<int64_t>(c, 1);
  const auto cell_bytes = [&] { return volume(cell_) * static_cast<int64_t>(elem_size); };
  while (cell_bytes() > target_bytes) {
    size_t best = cell_.size();
    for (size_t d = 0; d < cell_.size(); ++d)
      if (cell_[d] > 1 && (best == cell_.size() || cell_[d] > cell_[best])) best = d;
    if (best == cell_.size()) break;  // a single element exceeds the target
    cell_[best] = (cell_[best] + 1) / 2;
  }
}

Box ChunkGrid::cell_containing(const Shape& index) const {
  Box cell{Shape(index.size()), Shape(index.size())};
  for (size_t d = 0; d < index.size(); ++d) {
    cell.offsets[d] = index[d] / cell_[d] * cell_[d];
    cell.sizes[d] = std::min(cell_[d], shape_[d] - cell.offsets[d]);
  }
  return cell;
}

void ChunkGrid::for_each_piece(const Box& box, const std::function<void(const Box&)>& fn) const {
  if (box.rank() != shape_.size()) throw std::logic_error("ChunkGrid: rank mismatch");
  if (box.empty()) return;
  const size_t rank = shape_.size();
  Shape first(rank), last(rank), cur(rank);
  for (size_t d = 0; d < rank; ++d) {
    first[d] = box.offsets[d] / cell_[d];
    last[d] = (box.offsets[d] + box.sizes[d] - 1) / cell_[d];
  }
  cur = first;
  while (true) {
    Box cell{Shape(rank), Shape(rank)};
    for (size_t d = 0; d < rank; ++d) {
      cell.offsets[d] = cur[d] * cell_[d];
      cell.sizes[d] = std::min(cell_[d], shape_[d] - cell.offsets[d]);
    }
    if (rank == 0) {
      fn(box);
      return;
    }
    fn(*intersect(cell, box));
    size_t d = rank;
    while (d > 0) {
      --d;
      if (++cur[d] <= last[d]) break;
      cur[d] = first[d];
      if (d == 0) return;
    }
  }
}

}  // namespace tessera
