// Checks that a tensor's pieces tile its global shape exactly: every piece
// inside the shape, no two overlapping, and together covering every element.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "geometry/box.h"

namespace tessera::plan {

// nullopt when `boxes` tile `shape` exactly; otherwise a description of the
// first defect found ("boxes ... and ... overlap", "... elements not covered").
std::optional<std::string> tiling_defect(const Shape& shape, const std::vector<Box>& boxes);
// The same, for boxes held elsewhere (a commit checks a million pieces'
// boxes without copying them).
std::optional<std::string> tiling_defect_of(const Shape& shape, const std::vector<const Box*>& boxes);

}  // namespace tessera::plan
