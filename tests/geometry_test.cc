#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "geometry/box.h"
#include "geometry/chunk_grid.h"
#include "plan/tiling.h"

using namespace tessera;

TEST_CASE("intersect and contains") {
  Box a{{0, 0}, {4, 4}}, b{{2, 3}, {4, 4}};
  auto r = intersect(a, b);
  REQUIRE(r);
  CHECK(*r == Box{{2, 3}, {2, 1}});
  CHECK_FALSE(intersect(a, Box{{4, 0}, {1, 4}}));
  CHECK(contains(a, Box{{1, 1}, {3, 3}}));
  CHECK_FALSE(contains(a, Box{{1, 1}, {4, 3}}));
  CHECK(intersect(Box{}, Box{})->volume() == 1);  // 0-D boxes hold one element
  CHECK_FALSE(intersect(Box{{0}, {0}}, Box{{0}, {3}}));
}

// Reference: element-by-element copy using the index formula.
static void naive_copy(const Box& region, const StridedView& src, const StridedView& dst, size_t elem) {
  Shape idx(region.rank(), 0);
  for (int64_t n = 0; n < region.volume(); ++n) {
    int64_t rem = n, so = 0, dof = 0;
    for (size_t d = region.rank(); d-- > 0;) {
      int64_t i = rem % region.sizes[d];
      rem /= region.sizes[d];
      int64_t g = region.offsets[d] + i;
      so += (g - src.box.offsets[d]) * src.strides[d];
      dof += (g - dst.box.offsets[d]) * dst.strides[d];
    }
    std::memcpy(dst.data + dof * elem, src.data + so * elem, elem);
  }
}

TEST_CASE("copy_region matches an element-wise copy for random layouts") {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    size_t rank = rng() % 5;
    size_t elem = std::vector<size_t>{1, 2, 4, 8}[rng() % 4];
    Box src_box{Shape(rank), Shape(rank)}, dst_box{Shape(rank), Shape(rank)};
    Box region{Shape(rank), Shape(rank)};
    for (size_t d = 0; d < rank; ++d) {
      region.offsets[d] = static_cast<int64_t>(rng() % 4);
      region.sizes[d] = 1 + static_cast<int64_t>(rng() % 4);
      src_box.offsets[d] = region.offsets[d] - static_cast<int64_t>(rng() % 2);
      src_box.sizes[d] = region.sizes[d] + static_cast<int64_t>(rng() % 3) + (region.offsets[d] - src_box.offsets[d]);
      dst_box.offsets[d] = region.offsets[d] - static_cast<int64_t>(rng() % 3);
      if (dst_box.offsets[d] < 0) dst_box.offsets[d] = 0;
      dst_box.sizes[d] = region.sizes[d] + (region.offsets[d] - dst_box.offsets[d]) + static_cast<int64_t>(rng() % 2);
    }
    // src: a permuted (transposed) layout; dst: contiguous or padded rows.
    std::vector<size_t> perm(rank);
    for (size_t d = 0; d < rank; ++d) perm[d] = d;
    std::shuffle(perm.begin(), perm.end(), rng);
    Shape src_strides(rank);
    int64_t s = 1;
    for (size_t k = rank; k-- > 0;) {
      src_strides[perm[k]] = s;
      s *= src_box.sizes[perm[k]];
    }
    Shape dst_strides = contiguous_strides(dst_box.sizes);
    int64_t pad = static_cast<int64_t>(rng() % 2);
    if (rank > 0 && pad) {
      for (size_t d = 0; d + 1 < rank; ++d) dst_strides[d] = dst_strides[d] / dst_box.sizes[rank - 1] * (dst_box.sizes[rank - 1] + 1);
    }
    int64_t dst_span = 1;
    for (size_t d = 0; d < rank; ++d) dst_span += (dst_box.sizes[d] - 1) * dst_strides[d];
    auto src = std::vector<std::byte>(static_cast<size_t>(src_box.volume()) * elem);
    for (auto& b : src) b = static_cast<std::byte>(rng());
    std::vector<std::byte> got(static_cast<size_t>(dst_span) * elem, std::byte{0}), want = got;
    StridedView sv{src_box, src.data(), src_strides};
    copy_region(region, sv, StridedView{dst_box, got.data(), dst_strides}, elem);
    naive_copy(region, sv, StridedView{dst_box, want.data(), dst_strides}, elem);
    REQUIRE(got == want);
  }
}

TEST_CASE("chunk grid depends on shape and dtype only and aligns power-of-two splits") {
  ChunkGrid g({8192, 2048}, 2, 4 << 20);
  CHECK(g.cell_shape() == Shape{1024, 2048});
  ChunkGrid down({2048, 8192}, 2, 4 << 20);
  CHECK(down.cell_shape() == Shape{1024, 2048});  // last dim split first: column shards align
  ChunkGrid small({10}, 4, 4 << 20);
  CHECK(small.cell_shape() == Shape{10});
  ChunkGrid scalar({}, 8, 1);
  CHECK(scalar.cell_shape().empty());
  ChunkGrid empty({0, 5}, 4, 16);
  int pieces = 0;
  empty.for_each_piece(Box{{0, 0}, {0, 5}}, [&](const Box&) { ++pieces; });
  CHECK(pieces == 0);

  // Halves along either dim, and quarters along the dim the grid splits most,
  // produce no clipped pieces.
  for (auto [parts, dim] : {std::pair{2, 0}, std::pair{2, 1}, std::pair{4, 1}}) {
    {
      int count = 0;
      for (int p = 0; p < parts; ++p) {
        Box shard{{0, 0}, {2048, 8192}};
        shard.sizes[dim] /= parts;
        shard.offsets[dim] = p * shard.sizes[dim];
        down.for_each_piece(shard, [&](const Box& piece) {
          CHECK(piece.sizes == down.cell_containing(piece.offsets).sizes);
          ++count;
        });
      }
      CHECK(count == 8);
    }
  }
}

TEST_CASE("chunk grid pieces tile any box exactly, and cells respect the target") {
  std::mt19937_64 rng(11);
  for (int iter = 0; iter < 200; ++iter) {
    size_t rank = 1 + rng() % 4;
    Shape shape(rank);
    for (auto& s : shape) s = 1 + static_cast<int64_t>(rng() % 40);
    size_t elem = size_t{1} << (rng() % 4);
    int64_t target = 16 + static_cast<int64_t>(rng() % 2000);
    ChunkGrid g(shape, elem, target);
    CHECK((volume(g.cell_shape()) * static_cast<int64_t>(elem) <= target || volume(g.cell_shape()) == 1));
    Box box{Shape(rank), Shape(rank)};
    for (size_t d = 0; d < rank; ++d) {
      box.offsets[d] = static_cast<int64_t>(rng() % static_cast<uint64_t>(shape[d]));
      box.sizes[d] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(shape[d] - box.offsets[d]));
    }
    std::vector<Box> pieces;
    g.for_each_piece(box, [&](const Box& p) {
      CHECK(contains(g.cell_containing(p.offsets), p));
      // express relative to the box to reuse the tiling check
      Box rel = p;
      for (size_t d = 0; d < rank; ++d) rel.offsets[d] -= box.offsets[d];
      pieces.push_back(rel);
    });
    CHECK_FALSE(plan::tiling_defect(box.sizes, pieces));
  }
}
