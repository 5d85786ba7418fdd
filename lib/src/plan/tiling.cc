#include "plan/tiling.h"

#include <algorithm>

namespace tessera::plan {
namespace {

// The indicator of a box [a, b) is the signed sum, over its 2^d corners c
// (c_i in {a_i, b_i}), of the orthant indicators 1[x >= c], with sign
// (-1)^(number of b_i chosen). Orthant indicators at distinct points are
// linearly independent, so boxes tile the whole exactly (every element
// covered once) iff their signed corners cancel to the whole's.
//
// Corners are kept flat, without an allocation each: row i is `rank`
// coordinates followed by the sign.
class Corners {
 public:
  Corners(size_t rank, size_t boxes) : rank_(rank) { data_.reserve((boxes << rank) * (rank + 1)); }

  void add(const Box& b, int64_t sign) {
    for (uint64_t mask = 0; mask < (uint64_t{1} << rank_); ++mask) {
      int64_t s = sign;
      for (size_t i = 0; i < rank_; ++i) {
        const bool far = (mask >> i) & 1;
        data_.push_back(b.offsets[i] + (far ? b.sizes[i] : 0));
        if (far) s = -s;
      }
      data_.push_back(s);
    }
  }

  // Whether the signs at every point sum to zero.
  bool cancel() const {
    const size_t stride = rank_ + 1, n = data_.size() / stride;
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    const auto point = [&](size_t i) { return data_.data() + i * stride; };
    const auto less = [&](size_t a, size_t b) {
      return std::lexicographical_compare(point(a), point(a) + rank_, point(b), point(b) + rank_);
    };
    std::sort(order.begin(), order.end(), less);
    for (size_t i = 0; i < n;) {
      int64_t sum = 0;
      size_t j = i;
      for (; j < n && std::equal(point(order[i]), point(order[i]) + rank_, point(order[j])); ++j)
        sum += point(order[j])[rank_];
      if (sum != 0) return false;
      i = j;
    }
    return true;
  }

 private:
  size_t rank_;
  std::vector<int64_t> data_;
};

// The first overlap, by a sweep along dim 0 (quadratic for boxes sharing a
// dim-0 range; run only to name the defect once the fast check failed).
std::optional<std::string> find_overlap(const Shape& shape, const std::vector<const Box*>& boxes) {
  std::vector<size_t> order(boxes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!shape.empty())
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return boxes[a]->offsets[0] < boxes[b]->offsets[0]; });
  for (size_t i = 0; i < order.size(); ++i) {
    const Box& a = *boxes[order[i]];
    if (a.empty()) continue;
    for (size_t j = i + 1; j < order.size(); ++j) {
      const Box& b = *boxes[order[j]];
      if (!shape.empty() && b.offsets[0] >= a.offsets[0] + a.sizes[0]) break;
      if (intersect(a, b)) return "boxes " + to_string(a) + " and " + to_string(b) + " overlap";
    }
  }
  return std::nullopt;
}

// Corners per box are 2^rank; above this rank the sweep alone decides.
constexpr size_t kMaxCornerRank = 12;

}  // namespace

std::optional<std::string> tiling_defect(const Shape& shape, const std::vector<Box>& boxes) {
  std::vector<const Box*> ptrs;
  ptrs.reserve(boxes.size());
  for (const Box& b : boxes) ptrs.push_back(&b);
  return tiling_defect_of(shape, ptrs);
}

std::optional<std::string> tiling_defect_of(const Shape& shape, const std::vector<const Box*>& boxes) {
  const Box whole = Box::whole(shape);
  int64_t covered = 0;
  for (const Box* b : boxes) {
    if (b->rank() != shape.size() || !contains(whole, *b))
      return "box " + to_string(*b) + " lies outside the global shape " + to_string(shape);
    covered += b->volume();
  }
  const auto uncovered = [&] {
    return std::to_string(volume(shape) - covered) + " of " + std::to_string(volume(shape)) +
           " elements are not covered by any shard";
  };
  if (shape.size() <= kMaxCornerRank && covered == volume(shape)) {
    Corners corners(shape.size(), boxes.size() + 1);
    for (const Box* b : boxes)
      if (!b->empty()) corners.add(*b, 1);
    if (!whole.empty()) corners.add(whole, -1);
    if (corners.cancel()) return std::nullopt;  // O(k 2^d log k)
  }
  if (auto overlap = find_overlap(shape, boxes)) return overlap;
  if (covered != volume(shape)) return uncovered();
  if (shape.size() <= kMaxCornerRank) return "the boxes do not tile the shape exactly";  // unreachable
  return std::nullopt;
}

}  // namespace tessera::plan
