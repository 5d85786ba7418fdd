#include "plan/tiling.h"

#include <algorithm>

namespace tessera::plan {

std::optional<std::string> tiling_defect(const Shape& shape, const std::vector<Box>& boxes) {
  const Box whole = Box::whole(shape);
  int64_t covered = 0;
  for (const Box& b : boxes) {
    if (b.rank() != shape.size() || !contains(whole, b))
      return "box " + to_string(b) + " lies outside the global shape " + to_string(shape);
    covered += b.volume();
  }
  // Sweep along dim 0: only boxes whose dim-0 intervals overlap can collide.
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
  if (covered != volume(shape))
    return std::to_string(volume(shape) - covered) + " of " + std::to_string(volume(shape)) +
           " elements are not covered by any shard";
  return std::nullopt;
}

}  // namespace tessera::plan
