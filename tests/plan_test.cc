#include <doctest/doctest.h>

#include <random>

#include "plan/read_plan.h"
#include "plan/tiling.h"

using namespace tessera;
using plan::ByteRange;

TEST_CASE("tiling defects are found and described") {
  Shape shape{4, 6};
  CHECK_FALSE(plan::tiling_defect(shape, {Box{{0, 0}, {2, 6}}, Box{{2, 0}, {2, 6}}}));
  auto gap = plan::tiling_defect(shape, {Box{{0, 0}, {2, 6}}, Box{{2, 0}, {2, 5}}});
  REQUIRE(gap);
  CHECK(gap->find("2 of 24 elements are not covered") != std::string::npos);
  auto overlap = plan::tiling_defect(shape, {Box{{0, 0}, {3, 6}}, Box{{2, 0}, {2, 6}}});
  REQUIRE(overlap);
  CHECK(overlap->find("overlap") != std::string::npos);
  auto outside = plan::tiling_defect(shape, {Box{{0, 0}, {5, 6}}});
  REQUIRE(outside);
  CHECK(outside->find("outside") != std::string::npos);
  CHECK_FALSE(plan::tiling_defect({}, {Box{}}));
  CHECK_FALSE(plan::tiling_defect({0, 3}, {}));
}

TEST_CASE("region byte ranges cover exactly the region's elements") {
  std::mt19937_64 rng(5);
  for (int iter = 0; iter < 500; ++iter) {
    size_t rank = rng() % 4;
    size_t elem = size_t{1} << (rng() % 3);
    Box chunk{Shape(rank), Shape(rank)}, region{Shape(rank), Shape(rank)};
    for (size_t d = 0; d < rank; ++d) {
      chunk.offsets[d] = static_cast<int64_t>(rng() % 10);
      chunk.sizes[d] = 1 + static_cast<int64_t>(rng() % 6);
      int64_t lo = static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk.sizes[d]));
      region.offsets[d] = chunk.offsets[d] + lo;
      region.sizes[d] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk.sizes[d] - lo));
    }
    auto ranges = plan::region_byte_ranges(chunk, region, elem);
    // Mark bytes the naive way and compare.
    std::vector<char> want(static_cast<size_t>(chunk.volume()) * elem, 0), got = want;
    Shape strides = contiguous_strides(chunk.sizes);
    for (int64_t n = 0; n < region.volume(); ++n) {
      int64_t rem = n, off = 0;
      for (size_t d = rank; d-- > 0;) {
        off += (region.offsets[d] - chunk.offsets[d] + rem % region.sizes[d]) * strides[d];
        rem /= region.sizes[d];
      }
      for (size_t b = 0; b < elem; ++b) want[static_cast<size_t>(off) * elem + b] = 1;
    }
    uint64_t prev_end = 0;
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (i) CHECK(ranges[i].begin > prev_end);  // sorted, disjoint, merged
      prev_end = ranges[i].end;
      for (uint64_t b = ranges[i].begin; b < ranges[i].end; ++b) got[b] = 1;
    }
    REQUIRE(got == want);
  }
}

TEST_CASE("widening to blocks clips at the chunk end and merges") {
  auto r = plan::widen_to_blocks({{10, 20}, {70, 80}, {300, 301}}, 64, 310);
  REQUIRE(r.size() == 2);
  CHECK(r[0] == ByteRange{0, 128});
  CHECK(r[1] == ByteRange{256, 310});
}
