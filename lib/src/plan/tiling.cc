#include "plan/tiling.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <utility>

namespace tessera::plan {
namespace {

// Corners per box are 2^rank; above this rank the sweep alone decides.
constexpr size_t kMaxCornerRank = 12;

// The indicator of a box [a, b) is the signed sum, over its 2^d corners c
// (c_i in {a_i, b_i}), of the orthant indicators 1[x >= c], with sign
// (-1)^(number of b_i chosen). Orthant indicators at distinct points are
// linearly independent, so boxes tile the whole exactly (every element
// covered once) iff their signed corners cancel to the whole's.
//
// Corners are kept without an allocation each. Where the grid of corner
// points, (shape[0] + 1) x ... x (shape[d-1] + 1), has fewer than 2^63
// points, a point is its row-major number in that grid and a corner is a
// (number, sign) pair, so grouping equal points is a sort of integers.
// Otherwise a corner is a row of a flat array: `rank` coordinates, then the
// sign.
class Corners {
 public:
  Corners(const Shape& shape, size_t boxes) : rank_(shape.size()) {
    strides_.assign(rank_, 0);
    uint64_t points = 1;
    for (size_t i = rank_; i-- > 0;) {
      strides_[i] = points;
      const auto extent = static_cast<uint64_t>(shape[i]) + 1;
      if (__builtin_mul_overflow(points, extent, &points) || points >= (uint64_t{1} << 63)) {
        strides_.clear();
        break;
      }
    }
    if (numbered()) numbered_.reserve(boxes << rank_);
    else flat_.reserve((boxes << rank_) * (rank_ + 1));
  }

  void add(const Box& b, int64_t sign) {
    if (numbered()) add_numbered(b, sign);
    else add_flat(b, sign);
  }

  // Whether the signs at every point sum to zero.
  bool cancel() { return numbered() ? cancel_numbered() : cancel_flat(); }

 private:
  bool numbered() const { return !strides_.empty() || rank_ == 0; }

  // Corner `mask` is the box's near corner plus, for each bit i set, its
  // size along dimension i; its sign flips with each such bit.
  void add_numbered(const Box& b, int64_t sign) {
    uint64_t near = 0;
    uint64_t step[kMaxCornerRank];
    for (size_t i = 0; i < rank_; ++i) {
      near += static_cast<uint64_t>(b.offsets[i]) * strides_[i];
      step[i] = static_cast<uint64_t>(b.sizes[i]) * strides_[i];
    }
    for (uint64_t mask = 0; mask < (uint64_t{1} << rank_); ++mask) {
      uint64_t point = near;
      for (size_t i = 0; i < rank_; ++i)
        if ((mask >> i) & 1) point += step[i];
      numbered_.emplace_back(point, std::popcount(mask) % 2 ? -sign : sign);
    }
  }

  void add_flat(const Box& b, int64_t sign) {
    for (uint64_t mask = 0; mask < (uint64_t{1} << rank_); ++mask) {
      for (size_t i = 0; i < rank_; ++i) flat_.push_back(b.offsets[i] + ((mask >> i) & 1 ? b.sizes[i] : 0));
      flat_.push_back(std::popcount(mask) % 2 ? -sign : sign);
    }
  }

  bool cancel_numbered() {
    std::sort(numbered_.begin(), numbered_.end());
    for (size_t i = 0; i < numbered_.size();) {
      int64_t sum = 0;
      size_t j = i;
      for (; j < numbered_.size() && numbered_[j].first == numbered_[i].first; ++j) sum += numbered_[j].second;
      if (sum != 0) return false;
      i = j;
    }
    return true;
  }

  bool cancel_flat() const {
    const size_t stride = rank_ + 1, n = flat_.size() / stride;
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    const auto point = [&](size_t i) { return flat_.data() + i * stride; };
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

  size_t rank_;
  std::vector<uint64_t> strides_;  // empty when the points do not fit (then flat_)
  std::vector<std::pair<uint64_t, int64_t>> numbered_;
  std::vector<int64_t> flat_;
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
    Corners corners(shape, boxes.size() + 1);
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
