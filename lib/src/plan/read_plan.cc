#include "plan/read_plan.h"

#include <algorithm>

namespace tessera::plan {
namespace {

void push_merged(std::vector<ByteRange>& out, ByteRange r) {
  if (!out.empty() && out.back().end >= r.begin) {
    out.back().end = std::max(out.back().end, r.end);
  } else {
    out.push_back(r);
  }
}

}  // namespace

std::vector<ByteRange> region_byte_ranges(const Box& chunk_box, const Box& region, size_t elem_size) {
  std::vector<ByteRange> out;
  if (region.empty()) return out;
  const size_t rank = region.rank();
  const Shape strides = contiguous_strides(chunk_box.sizes);
  if (rank == 0) return {ByteRange{0, elem_size}};
  // Innermost dims the region spans fully merge into one run.
  size_t inner = rank - 1;
  while (inner > 0 && region.sizes[inner] == chunk_box.sizes[inner]) --inner;
  // dims (inner, rank) are full; dim `inner` is partial (or the outermost).
  int64_t run = region.sizes[inner] * strides[inner];
  Shape idx(inner, 0);
  while (true) {
    int64_t off = 0;
    for (size_t d = 0; d < inner; ++d) off += (region.offsets[d] - chunk_box.offsets[d] + idx[d]) * strides[d];
    off += (region.offsets[inner] - chunk_box.offsets[inner]) * strides[inner];
    const uint64_t b = static_cast<uint64_t>(off) * elem_size;
    push_merged(out, ByteRange{b, b + static_cast<uint64_t>(run) * elem_size});
    size_t d = inner;
    while (d > 0) {
      --d;
      if (++idx[d] < region.sizes[d]) break;
      idx[d] = 0;
      if (d == 0) return out;
    }
    if (inner == 0) return out;
  }
}

std::vector<ByteRange> widen_to_blocks(const std::vector<ByteRange>& ranges, uint64_t block, uint64_t limit) {
  std::vector<ByteRange> out;
  for (const ByteRange& r : ranges)
    push_merged(out, ByteRange{r.begin / block * block, std::min(limit, (r.end + block - 1) / block * block)});
  return out;
}

}  // namespace tessera::plan
