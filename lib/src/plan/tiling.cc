#include "plan/tiling.h"

#include <algorithm>

namespace tessera::plan {
namespace {

// A corner of a box, with the sign it carries in the box's indicator.
struct Corner {
  Shape point;
  int sign;
};

// The indicator of a box [a, b) is the signed sum, over its 2^d corners c
// (c_i in {a_i, b_i}), of the orthant indicators 1[x >= c], with sign
// (-1)^(number of b_i chosen). Orthant indicators at distinct points are
// linearly independent, so boxes tile the whole exactly (every element
// covered once) iff their signed corners cancel to the whole's.
void add_corners(const Box& b, int sign, std::vector<Corner>& out) {
  const size_t d = b.rank();
  for (uint64_t mask = 0; mask < (uint64_t{1} << d); ++mask) {
    Corner c{Shape(d), sign};
    for (size_t i = 0; i < d; ++i) {
      const bool far = (mask >> i) & 1;
      c.point[i] = b.offsets[i] + (far ? b.sizes[i] : 0);
      if (far) c.sign = -c.sign;
    }
    out.push_back(std::move(c));
  }
}

bool corners_cancel(std::vector<Corner>& corners) {
  std::sort(corners.begin(), corners.end(), [](const Corner& a, const Corner& b) { return a.point < b.point; });
  for (size_t i = 0; i < corners.size();) {
    int64_t sum = 0;
    size_t j = i;
    for (; j < corners.size() && corners[j].point == corners[i].point; ++j) sum += corners[j].sign;
    if (sum != 0) return false;
    i = j;
  }
  return true;
}

// The first overlap, by a sweep along dim 0 (quadratic for boxes sharing a
// dim-0 range; run only to name the defect once the fast check failed).
std::optional<std::string> find_overlap(const Shape& shape, const std::vector<Box>& boxes) {
  std::vector<size_t> order(boxes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!shape.empty())
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return boxes[a].offsets[0] < boxes[b].offsets[0]; });
  for (size_t i = 0; i < order.size(); ++i) {
    const Box& a = boxes[order[i]];
    if (a.empty()) continue;
    for (size_t j = i + 1; j < order.size(); ++j) {
      const Box& b = boxes[order[j]];
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
  const Box whole = Box::whole(shape);
  int64_t covered = 0;
  for (const Box& b : boxes) {
    if (b.rank() != shape.size() || !contains(whole, b))
      return "box " + to_string(b) + " lies outside the global shape " + to_string(shape);
    covered += b.volume();
  }
  const auto uncovered = [&] {
    return std::to_string(volume(shape) - covered) + " of " + std::to_string(volume(shape)) +
           " elements are not covered by any shard";
  };
  if (shape.size() <= kMaxCornerRank && covered == volume(shape)) {
    std::vector<Corner> corners;
    corners.reserve((boxes.size() + 1) << shape.size());
    for (const Box& b : boxes)
      if (!b.empty()) add_corners(b, 1, corners);
    if (!whole.empty()) add_corners(whole, -1, corners);
    if (corners_cancel(corners)) return std::nullopt;  // O(k 2^d log k)
  }
  if (auto overlap = find_overlap(shape, boxes)) return overlap;
  if (covered != volume(shape)) return uncovered();
  if (shape.size() <= kMaxCornerRank) return "the boxes do not tile the shape exactly";  // unreachable
  return std::nullopt;
}

}  // namespace tessera::plan
