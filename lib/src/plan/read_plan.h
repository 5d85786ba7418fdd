// Load planning for one chunk: which bytes of a stored chunk a target box
// needs. For raw chunks a load reads only those byte ranges (widened to
// checksum blocks when verifying); compressed chunks are read whole.
#pragma once

#include <cstdint>
#include <vector>

#include "geometry/box.h"

namespace tessera::plan {

struct ByteRange {
  uint64_t begin = 0;  // inclusive
  uint64_t end = 0;    // exclusive
  uint64_t size() const { return end - begin; }
  bool operator==(const ByteRange&) const = default;
};

// Byte ranges, within the row-major bytes of `chunk_box`, that hold the
// elements of `region` (which must lie in chunk_box). Adjacent runs are
// merged; the result is sorted and disjoint.
std::vector<ByteRange> region_byte_ranges(const Box& chunk_box, const Box& region, size_t elem_size);

// Widens each range to whole blocks of `block` bytes (clipped at `limit`)
// and merges ranges that then touch.
std::vector<ByteRange> widen_to_blocks(const std::vector<ByteRange>& ranges, uint64_t block, uint64_t limit);

}  // namespace tessera::plan
