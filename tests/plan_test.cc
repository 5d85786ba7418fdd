#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "geometry/chunk_grid.h"
#include "plan/export_plan.h"
#include "plan/gc_plan.h"
#include "plan/load_plan.h"
#include "plan/read_plan.h"
#include "plan/save_plan.h"
#include "plan/tiling.h"
#include "tessera/replicas.h"

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

// Brute force: count how often each element is covered.
bool tiles_by_counting(const Shape& shape, const std::vector<Box>& boxes) {
  std::vector<int> hits(static_cast<size_t>(volume(shape)), 0);
  const Shape strides = contiguous_strides(shape);
  for (const Box& b : boxes) {
    if (b.rank() != shape.size() || !contains(Box::whole(shape), b)) return false;
    for (int64_t e = 0; e < b.volume(); ++e) {
      int64_t rest = e, index = 0;
      for (size_t d = b.rank(); d-- > 0;) {
        index += (b.offsets[d] + rest % b.sizes[d]) * strides[d];
        rest /= b.sizes[d];
      }
      ++hits[static_cast<size_t>(index)];
    }
  }
  return std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; });
}

TEST_CASE("property: tiling_defect agrees with counting every element") {
  std::mt19937_64 rng(11);
  int tilings = 0, defects = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const size_t rank = 1 + rng() % 3;
    Shape shape(rank);
    for (auto& s : shape) s = 1 + static_cast<int64_t>(rng() % 5);
    // A grid partition, then (often) one random change: a box dropped,
    // duplicated, grown, shrunk or moved.
    std::vector<std::vector<int64_t>> cuts(rank);
    for (size_t d = 0; d < rank; ++d) {
      cuts[d] = {0, shape[d]};
      for (int64_t c = 1; c < shape[d]; ++c)
        if (rng() % 2) cuts[d].push_back(c);
      std::sort(cuts[d].begin(), cuts[d].end());
    }
    std::vector<Box> boxes{Box{}};
    for (size_t d = 0; d < rank; ++d) {
      std::vector<Box> next;
      for (const Box& b : boxes)
        for (size_t i = 0; i + 1 < cuts[d].size(); ++i) {
          Box c = b;
          c.offsets.push_back(cuts[d][i]);
          c.sizes.push_back(cuts[d][i + 1] - cuts[d][i]);
          next.push_back(c);
        }
      boxes = next;
    }
    Box& victim = boxes[rng() % boxes.size()];
    const size_t dim = rng() % rank;
    switch (rng() % 6) {
      case 0: boxes.erase(boxes.begin() + static_cast<long>(&victim - boxes.data())); break;
      case 1: boxes.push_back(victim); break;
      case 2: victim.sizes[dim] += 1; break;
      case 3: victim.sizes[dim] = std::max<int64_t>(0, victim.sizes[dim] - 1); break;
      case 4: victim.offsets[dim] = std::max<int64_t>(0, victim.offsets[dim] - 1); break;
      default: break;  // unchanged
    }
    std::shuffle(boxes.begin(), boxes.end(), rng);
    const bool tiles = tiles_by_counting(shape, boxes);
    const auto defect = plan::tiling_defect(shape, boxes);
    REQUIRE(tiles == !defect.has_value());
    (tiles ? tilings : defects)++;
  }
  CHECK(tilings > 500);
  CHECK(defects > 500);
}

TEST_CASE("tiling of a shape whose corner points cannot be numbered in 64 bits") {
  // 38^12 elements fit in int64, but the 39^12 corner points do not: the
  // check compares corners coordinate by coordinate instead.
  const Shape shape(12, 38);
  auto split = [&](int64_t at, int64_t second_from) {
    Box a = Box::whole(shape), b = Box::whole(shape);
    a.sizes[0] = at;
    b.offsets[0] = second_from;
    b.sizes[0] = 38 - second_from;
    return std::vector<Box>{a, b};
  };
  CHECK_FALSE(plan::tiling_defect(shape, split(19, 19)));
  auto overlap = plan::tiling_defect(shape, split(20, 19));
  REQUIRE(overlap);
  CHECK(overlap->find("overlap") != std::string::npos);
  auto gap = plan::tiling_defect(shape, split(18, 19));
  REQUIRE(gap);
  CHECK(gap->find("not covered") != std::string::npos);
}

TEST_CASE("tiling check scales: 64k column shards, and one overlap among them") {
  // Row-block x column-shard grid: every box shares its dim-0 range with
  // 256 others (the case a dim-0 sweep handles in quadratic time).
  std::vector<Box> boxes;
  for (int64_t r = 0; r < 256; ++r)
    for (int64_t c = 0; c < 256; ++c) boxes.push_back(Box{{r * 4, c * 8}, {4, 8}});
  CHECK_FALSE(plan::tiling_defect({1024, 2048}, boxes));
  boxes.back().sizes[1] = 9;  // now overlapping nothing but reaching outside
  CHECK(plan::tiling_defect({1024, 2048}, boxes)->find("outside") != std::string::npos);
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

// --- save plan ---

std::vector<Box> boxes_of(const std::vector<plan::SavePiece>& pieces) {
  std::vector<Box> out;
  for (const auto& p : pieces) out.push_back(p.box);
  return out;
}

TEST_CASE("save plan: a box crossing chunk boundaries is cut at every cell edge, in row-major cell order") {
  // {4, 6} floats, 24-byte chunks: cells of {2, 3} (dim 1 halves first, then dim 0).
  plan::SaveTensor t{{4, 6}, Box{{1, 0}, {2, 6}}, 4, 0, 1, false};
  REQUIRE(ChunkGrid(t.global_shape, 4, 24).cell_shape() == Shape{2, 3});
  const plan::SavePlan p = plan::plan_save({t}, 24);
  CHECK(boxes_of(p.pieces) ==
        std::vector<Box>{Box{{1, 0}, {1, 3}}, Box{{1, 3}, {1, 3}}, Box{{2, 0}, {1, 3}}, Box{{2, 3}, {1, 3}}});
  for (const auto& piece : p.pieces) {
    CHECK(piece.tensor == 0);
    CHECK(piece.bytes == 12);
  }
  CHECK(p.bytes == 48);
  CHECK(p.groups == std::vector<size_t>{0, 4});
  // A box inside one cell is one piece; a whole tensor is its cells.
  CHECK(boxes_of(plan::plan_save({{{4, 6}, Box{{2, 3}, {2, 2}}, 4, 0, 1, false}}, 24).pieces) ==
        std::vector<Box>{Box{{2, 3}, {2, 2}}});
  CHECK(plan::plan_save({{{4, 6}, Box{{0, 0}, {4, 6}}, 4, 0, 1, false}}, 24).pieces.size() == 4);
}

TEST_CASE("save plan: replicas of a box split its pieces round-robin, each piece written once") {
  // {8} bytes in 2-byte chunks: 4 pieces; 3 replicas take pieces 0 and 3, 1, 2.
  auto mine = [](int64_t index, int64_t count) {
    return boxes_of(plan::plan_save({{{8}, Box{{0}, {8}}, 1, index, count, false}}, 2).pieces);
  };
  CHECK(mine(0, 3) == std::vector<Box>{Box{{0}, {2}}, Box{{6}, {2}}});
  CHECK(mine(1, 3) == std::vector<Box>{Box{{2}, {2}}});
  CHECK(mine(2, 3) == std::vector<Box>{Box{{4}, {2}}});
  CHECK(plan::piece_owner(3, 3) == 0);
  CHECK(plan::piece_owner(5, 4) == 1);
  // More replicas than pieces: the extra replicas write nothing.
  CHECK(mine(5, 6).empty());
  // Together the replicas write every piece exactly once, whatever their number.
  const std::vector<Box> all = mine(0, 1);
  for (int64_t count = 1; count <= 5; ++count) {
    std::vector<Box> together;
    for (int64_t r = 0; r < count; ++r)
      for (const Box& b : mine(r, count)) together.push_back(b);
    CHECK(together.size() == all.size());
    CHECK_FALSE(plan::tiling_defect({8}, together));
  }
}

TEST_CASE("save plan: owners count each tensor's pieces from zero; pieces name their tensor") {
  // 2-byte chunks: tensor 0 has 3 pieces, tensor 1 has 2. Replica 1 of 2 writes
  // the second piece of each (counting on from tensor 0 would give it tensor 1's first).
  const std::vector<plan::SaveTensor> ts{{{5}, Box{{0}, {5}}, 1, 1, 2, false}, {{2}, Box{{0}, {2}}, 2, 1, 2, false}};
  const plan::SavePlan p = plan::plan_save(ts, 2);
  REQUIRE(p.pieces.size() == 2);
  CHECK(p.pieces[0].tensor == 0);
  CHECK(p.pieces[0].box == Box{{2}, {2}});
  CHECK(p.pieces[0].bytes == 2);
  CHECK(p.pieces[1].tensor == 1);
  CHECK(p.pieces[1].box == Box{{1}, {1}});
  CHECK(p.pieces[1].bytes == 2);
  CHECK(p.bytes == 4);
  CHECK(boxes_of(plan::plan_save({{{5}, Box{{0}, {5}}, 1, 0, 2, false}}, 2).pieces) ==
        std::vector<Box>{Box{{0}, {2}}, Box{{4}, {1}}});
}

TEST_CASE("save plan: groups close at the piece limit, at the byte limit and between staged tensors") {
  plan::SaveTensor seven{{7}, Box{{0}, {7}}, 4, 0, 1, false};  // 4-byte chunks: 7 pieces of 4 bytes
  CHECK(plan::plan_save({seven}, 4, {3, 1000}).groups == std::vector<size_t>{0, 3, 6, 7});
  // A group ends once it holds 10 bytes: after its third 4-byte piece.
  CHECK(plan::plan_save({seven}, 4, {100, 10}).groups == std::vector<size_t>{0, 3, 6, 7});
  CHECK(plan::plan_save({seven}, 4, {100, 12}).groups == std::vector<size_t>{0, 3, 6, 7});
  CHECK(plan::plan_save({seven}, 4, {100, 13}).groups == std::vector<size_t>{0, 4, 7});
  CHECK(plan::plan_save({seven}, 4).groups == std::vector<size_t>{0, 7});  // the defaults: 64 pieces, 8 MiB
  // Host tensors share groups; a staged one shares with nobody.
  auto two = [](bool staged) { return plan::SaveTensor{{2}, Box{{0}, {2}}, 4, 0, 1, staged}; };
  CHECK(plan::plan_save({two(false), two(true), two(false), two(false)}, 4).groups ==
        std::vector<size_t>{0, 2, 4, 8});
  CHECK(plan::plan_save({two(true), two(true)}, 4).groups == std::vector<size_t>{0, 2, 4});
  CHECK(plan::plan_save({two(false), two(false)}, 4).groups == std::vector<size_t>{0, 4});
  // Nothing to write: no groups.
  const plan::SavePlan none = plan::plan_save({}, 4);
  CHECK(none.pieces.empty());
  CHECK(none.groups == std::vector<size_t>{0});
  CHECK(plan::plan_save({{{4}, Box{{0}, {4}}, 1, 1, 2, false}}, 4).groups == std::vector<size_t>{0});
}

// --- load plan ---

TEST_CASE("load plan: requested names match saved tensors and values; missing and unexpected are listed") {
  const plan::NameMatch m = plan::match_names({"a", "b", "d", "e"}, {"a", "c", "d"}, {"b", "f"});
  REQUIRE(m.entries.size() == 4);
  CHECK(m.entries[0].tensor == std::optional<size_t>(0));
  CHECK_FALSE(m.entries[0].value);
  CHECK_FALSE(m.entries[1].tensor);
  CHECK(m.entries[1].value == std::optional<size_t>(0));
  CHECK(m.entries[2].tensor == std::optional<size_t>(2));
  CHECK_FALSE(m.entries[3].tensor);
  CHECK_FALSE(m.entries[3].value);
  CHECK(m.missing == std::vector<std::string>{"e"});
  CHECK(m.unexpected == std::vector<std::string>{"c", "f"});
  // Unexpected names of both kinds come out sorted together.
  const plan::NameMatch extra = plan::match_names({"m"}, {"a", "z"}, {"b", "y"});
  CHECK(extra.missing == std::vector<std::string>{"m"});
  CHECK(extra.unexpected == std::vector<std::string>{"a", "b", "y", "z"});
  const plan::NameMatch empty = plan::match_names({}, {}, {});
  CHECK(empty.entries.empty());
  CHECK(empty.missing.empty());
  CHECK(empty.unexpected.empty());
  const plan::NameMatch nothing_saved = plan::match_names({"x", "y"}, {}, {});
  CHECK(nothing_saved.missing == std::vector<std::string>{"x", "y"});
}

TEST_CASE("load plan: a target reads the region of every piece it meets, and counts what they cover") {
  // {4, 6} saved as four {2, 3} pieces.
  const std::vector<Box> saved{Box{{0, 0}, {2, 3}}, Box{{0, 3}, {2, 3}}, Box{{2, 0}, {2, 3}}, Box{{2, 3}, {2, 3}}};
  std::vector<const Box*> pieces;
  for (const Box& b : saved) pieces.push_back(&b);
  const plan::TargetReads across = plan::target_reads(pieces, Box{{1, 2}, {2, 2}});
  REQUIRE(across.regions.size() == 4);
  CHECK(across.regions[0].piece == 0);
  CHECK(across.regions[0].region == Box{{1, 2}, {1, 1}});
  CHECK(across.regions[1].region == Box{{1, 3}, {1, 1}});
  CHECK(across.regions[2].region == Box{{2, 2}, {1, 1}});
  CHECK(across.regions[3].piece == 3);
  CHECK(across.regions[3].region == Box{{2, 3}, {1, 1}});
  CHECK(across.covered == 4);
  const plan::TargetReads inside = plan::target_reads(pieces, Box{{2, 3}, {2, 3}});
  REQUIRE(inside.regions.size() == 1);
  CHECK(inside.regions[0].piece == 3);
  CHECK(inside.regions[0].region == saved[3]);
  CHECK(inside.covered == 6);
  // A lost piece shows as elements not covered (the engine calls the catalog damaged).
  const std::vector<const Box*> three(pieces.begin(), pieces.begin() + 3);
  CHECK(plan::target_reads(three, Box{{0, 0}, {4, 6}}).covered == 18);
  CHECK(plan::target_reads(pieces, Box{{0, 0}, {4, 6}}).covered == 24);
}

TEST_CASE("load plan: each distinct chunk is looked up once, in order of first use") {
  auto id = [](char c) { return pack::chunk_id_of(&c, 1); };
  const pack::ChunkId a = id('a'), b = id('b'), c = id('c');
  const plan::ChunkLookups l = plan::chunk_lookups({a, b, a, c, b});
  CHECK(l.chunks == std::vector<pack::ChunkId>{a, b, c});
  CHECK(l.first_read == std::vector<size_t>{0, 1, 3});
  CHECK(l.of_read == std::vector<size_t>{0, 1, 0, 2, 1});
  CHECK(plan::chunk_lookups({}).chunks.empty());
}

TEST_CASE("load plan: waves hold at most the staging budget; a larger entry is a wave of its own") {
  CHECK(plan::waves({4, 4, 4, 0, 20, 0, 3}, 10) == std::vector<size_t>{0, 2, 4, 5, 7});
  CHECK(plan::waves({5, 5, 5}, 10) == std::vector<size_t>{0, 2, 3});
  CHECK(plan::waves({0, 0, 0}, 0) == std::vector<size_t>{0, 3});     // host views cost nothing
  CHECK(plan::waves({1, 1, 1}, 0) == std::vector<size_t>{0, 1, 2, 3});
  CHECK(plan::waves({3, 3}, UINT64_MAX - 8) == std::vector<size_t>{0, 2});
  CHECK(plan::waves({}, 10) == std::vector<size_t>{0});
}

// ---- export and gc plans (step 4b) ----

std::vector<size_t> tensors_of(const plan::ExportFile& f) {
  std::vector<size_t> out;
  for (const auto& t : f.tensors) out.push_back(t.tensor);
  return out;
}

TEST_CASE("export plan: tensors within the limit make one file, laid out by element size then name, with its header") {
  const std::vector<plan::ExportTensor> ts{
      {"b", "F32", {2}, 4}, {"a", "BF16", {3}, 2}, {"c", "F64", {}, 8}};  // 8, 6 and 8 bytes
  const plan::ExportPlan p = plan::plan_export(ts, 22, {{"format", "ignored"}, {"k", "v\"q"}});
  CHECK(p.total_size == 22);
  CHECK(p.index.empty());
  REQUIRE(p.files.size() == 1);
  const plan::ExportFile& f = p.files[0];
  CHECK(f.name == "model.safetensors");
  CHECK(f.tensors == std::vector<plan::PlacedTensor>{{2, 0, 8}, {0, 8, 16}, {1, 16, 22}});
  CHECK(f.data_bytes == 22);
  // 208 header bytes after the 8-byte little-endian length: the JSON and 3 spaces.
  CHECK(f.header.substr(0, 8) == std::string("\xd0\0\0\0\0\0\0\0", 8));
  CHECK(f.header.substr(8) ==
        R"({"__metadata__":{"format":"pt","k":"v\"q"},"c":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}   )");
  CHECK(f.size() == 8 + 208 + 22);
  // One byte less and the same tensors are shards.
  CHECK(plan::plan_export(ts, 21, {}).files.size() == 2);
}

TEST_CASE("export plan: shards fill greedily in name order; a tensor over the limit gets a shard of its own") {
  // uint8 tensors, given out of name order: d 4, a 3, b 3, c 10, e 2, f 0 bytes; limit 6.
  auto u8 = [](const char* name, int64_t n) { return plan::ExportTensor{name, "U8", {n}, 1}; };
  const std::vector<plan::ExportTensor> ts{u8("d", 4), u8("a", 3), u8("b", 3), u8("c", 10), u8("e", 2), u8("f", 0)};
  const plan::ExportPlan p = plan::plan_export(ts, 6, {});
  CHECK(p.total_size == 22);
  REQUIRE(p.files.size() == 3);
  CHECK(p.files[0].name == "model-00001-of-00003.safetensors");
  CHECK(p.files[1].name == "model-00002-of-00003.safetensors");
  CHECK(p.files[2].name == "model-00003-of-00003.safetensors");
  CHECK(p.files[0].tensors == std::vector<plan::PlacedTensor>{{1, 0, 3}, {2, 3, 6}});  // a, b: exactly the limit
  CHECK(p.files[1].tensors == std::vector<plan::PlacedTensor>{{3, 0, 10}});           // c alone, over the limit
  CHECK(p.files[2].tensors == std::vector<plan::PlacedTensor>{{0, 0, 4}, {4, 4, 6}, {5, 6, 6}});  // d, e, empty f
  CHECK(tensors_of(p.files[2]) == std::vector<size_t>{0, 4, 5});
  CHECK(p.files[1].data_bytes == 10);
  CHECK(p.files[1].header.substr(0, 8) == std::string("X\0\0\0\0\0\0\0", 8));  // 88
  CHECK(p.files[1].header.substr(8) ==
        R"({"__metadata__":{"format":"pt"},"c":{"dtype":"U8","shape":[10],"data_offsets":[0,10]}}  )");
  CHECK(p.index ==
        "{\n  \"metadata\": {\n    \"total_size\": 22\n  },\n  \"weight_map\": {"
        "\n    \"a\": \"model-00001-of-00003.safetensors\",\n    \"b\": \"model-00001-of-00003.safetensors\","
        "\n    \"c\": \"model-00002-of-00003.safetensors\",\n    \"d\": \"model-00003-of-00003.safetensors\","
        "\n    \"e\": \"model-00003-of-00003.safetensors\",\n    \"f\": \"model-00003-of-00003.safetensors\""
        "\n  }\n}\n");
  // Every tensor over the limit: one shard each.
  const plan::ExportPlan big = plan::plan_export({u8("x", 5), u8("y", 5)}, 4, {});
  REQUIRE(big.files.size() == 2);
  CHECK(tensors_of(big.files[0]) == std::vector<size_t>{0});
  CHECK(tensors_of(big.files[1]) == std::vector<size_t>{1});
}

TEST_CASE("export plan: no tensors is one file holding the metadata alone") {
  const plan::ExportPlan p = plan::plan_export({}, 1, {});
  CHECK(p.total_size == 0);
  CHECK(p.index.empty());
  REQUIRE(p.files.size() == 1);
  CHECK(p.files[0].name == "model.safetensors");
  CHECK(p.files[0].tensors.empty());
  CHECK(p.files[0].header == std::string(" \0\0\0\0\0\0\0", 8) + R"({"__metadata__":{"format":"pt"}})");
  CHECK(p.files[0].size() == 40);
}

TEST_CASE("export plan: file names written are the names recognized; JSON strings are escaped") {
  CHECK(plan::export_shard_name(0, 3) == "model-00001-of-00003.safetensors");
  CHECK(plan::export_shard_name(99999, 100000) == "model-100000-of-100000.safetensors");
  for (const char* name : {"model.safetensors", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                           "model-100000-of-100000.safetensors"})
    CHECK(plan::is_export_file_name(name));
  for (const char* name : {"model-0001-of-00003.safetensors", "model-00001-of-0000x.safetensors",
                           "model-00001.safetensors", "other.safetensors", "model.safetensors.tmp", "model-"})
    CHECK_FALSE(plan::is_export_file_name(name));
  CHECK(plan::json_string("a\"b\\c\n\t\r\x01\x7f\xc3\xa9") == "\"a\\\"b\\\\c\\n\\t\\r\\u0001\\u007f\xc3\xa9\"");
}

using namespace std::chrono_literals;

TEST_CASE("gc plan: a pack with nothing live is deleted, one below the live fraction rewritten, the rest kept") {
  const std::vector<plan::CatalogPack> packs{{"a.pack", 100, 0, 0},   {"b.pack", 100, 74, 3}, {"c.pack", 100, 75, 3},
                                             {"d.pack", 100, 100, 5}, {"e.pack", 0, 0, 0}};
  const plan::GcLists l = plan::plan_gc_lists(packs, {}, {}, 0.75, 1h);
  CHECK(l.delete_packs == std::vector<size_t>{0, 4});
  CHECK(l.rewrite_packs == std::vector<size_t>{1});  // 74% < 75%; c at exactly 75% stays
  CHECK(l.rewrite_live_bytes == 74);
  CHECK(plan::plan_gc_lists(packs, {}, {}, 0, 1h).rewrite_packs.empty());  // 0 never rewrites
  const plan::GcLists any_dead = plan::plan_gc_lists(packs, {}, {}, 1, 1h);
  CHECK(any_dead.rewrite_packs == std::vector<size_t>{1, 2});
  CHECK(any_dead.delete_packs == std::vector<size_t>{0, 4});
  CHECK(any_dead.rewrite_live_bytes == 149);
  // Nothing at all: nothing to do.
  const plan::GcLists none = plan::plan_gc_lists({}, {}, {}, 0.75, 1h);
  CHECK(none.delete_packs.empty());
  CHECK(none.rewrite_packs.empty());
  CHECK(none.unknown_packs.empty());
  CHECK(none.temp_files.empty());
  CHECK(none.young_unknown_packs + none.young_temp_files + none.rewrite_live_bytes == 0);
}

TEST_CASE("gc plan: pack files the catalog does not name, and tmp/ files, go once at least grace old") {
  const std::vector<plan::CatalogPack> packs{{"a.pack", 10, 10, 1}};
  const std::vector<plan::StoreFile> pack_files{
      {"a.pack", 10, 2h}, {"x.pack", 11, 2h}, {"y.pack", 12, 59min}, {"z.pack", 13, 1h}};
  const std::vector<plan::StoreFile> temps{{"t1", 5, 3h}, {"t2", 6, 1s}};
  const plan::GcLists l = plan::plan_gc_lists(packs, pack_files, temps, 0.75, 1h);
  CHECK(l.unknown_packs == std::vector<size_t>{1, 3});  // a.pack is the catalog's; y.pack is young
  CHECK(l.young_unknown_packs == 1);
  CHECK(l.temp_files == std::vector<size_t>{0});
  CHECK(l.young_temp_files == 1);
  CHECK(l.delete_packs.empty());
  // Grace 0: every stray file goes, but one modified in the future is still young.
  const plan::GcLists now = plan::plan_gc_lists(packs, pack_files, {{"t3", 1, -1s}, {"t4", 1, 0s}}, 0.75, 0s);
  CHECK(now.unknown_packs == std::vector<size_t>{1, 2, 3});
  CHECK(now.temp_files == std::vector<size_t>{1});
  CHECK(now.young_temp_files == 1);
  CHECK(plan::old_enough(3600s, 1h));
  CHECK_FALSE(plan::old_enough(3599999ms, 1h));
}

TEST_CASE("gc re-check before copying: a rewrite a later commit made worth less is abandoned, naming its live fraction") {
  // 235 of 300 bytes live is no longer below 75%: 78% (rounded down).
  CHECK(plan::rewrite_abandoned(plan::CatalogPack{"b.pack", 300, 235, 4}, 0.75) ==
        std::optional<std::string>("checkpoints committed since planning made it 78% live"));
  CHECK_FALSE(plan::rewrite_abandoned(plan::CatalogPack{"b.pack", 100, 74, 4}, 0.75));
  CHECK_FALSE(plan::rewrite_abandoned(std::nullopt, 0.75));  // left the catalog: refused under the lock instead
  CHECK(plan::percent_live({"e.pack", 0, 0, 0}) == "0%");
  CHECK(plan::percent_live({"f.pack", 3, 3, 1}) == "100%");
}

TEST_CASE("gc re-check under the write lock: a rewrite is refused when abandoned, gone, or more of it became live") {
  auto id = [](char c) { return pack::chunk_id_of(&c, 1); };
  auto entry = [&](char c) {
    pack::ChunkEntry e;
    e.id = id(c);
    return e;
  };
  const std::vector<pack::ChunkEntry> live{entry('x'), entry('y')};
  CHECK_FALSE(plan::rewrite_refusal("p.pack", "", &live, {id('y'), id('x')}));
  // A copied chunk that died meanwhile is harmless: its row is dropped as an orphan.
  CHECK_FALSE(plan::rewrite_refusal("p.pack", "", &live, {id('x'), id('y'), id('z')}));
  CHECK(plan::rewrite_refusal("p.pack", "", &live, {id('x')}) ==
        std::optional<std::string>(
            "pack p.pack not rewritten: a checkpoint committed since planning references more of it"));
  CHECK(plan::rewrite_refusal("p.pack", "", nullptr, {id('x')}) ==
        std::optional<std::string>("pack p.pack not rewritten: it left the catalog meanwhile"));
  CHECK(plan::rewrite_refusal("p.pack", "disk full", &live, {id('x'), id('y')}) ==
        std::optional<std::string>("pack p.pack not rewritten: disk full"));
  const std::vector<pack::ChunkEntry> nothing;
  CHECK_FALSE(plan::rewrite_refusal("p.pack", "", &nothing, {}));
}

TEST_CASE("gc re-check under the write lock: a planned delete a later commit references is refused; empty new packs go") {
  CHECK(plan::drop_candidates({"a", "b"}, {"c", "a"}, {"n1", "n2"}) ==
        std::vector<std::string>{"a", "b", "c", "n1", "n2"});
  CHECK(plan::drop_candidates({}, {}, {}).empty());
  // a and the rewritten c lost their last chunk row; b gained one; n1 got no copy.
  const plan::PackDrops d = plan::settle_drops({"a", "b", "c", "n1", "n2"}, {"a", "c", "n1"}, {"a", "b"}, {"n1", "n2"});
  CHECK(d.dropped == std::vector<std::string>{"a", "c", "n1"});
  CHECK(d.skipped ==
        std::vector<std::string>{"pack b not deleted: a checkpoint committed since planning references it"});
  CHECK(d.new_packs == std::vector<std::string>{"n2"});
  // A rewritten pack that keeps a row is not reported: its rewrite was.
  CHECK(plan::settle_drops({"c"}, {}, {}, {}).skipped.empty());
}

// ---- replica rows (step 7) ----

namespace {

using Plan = std::vector<std::vector<RowPart>>;

std::vector<RowRange> ranges(std::initializer_list<std::pair<int64_t, int64_t>> list) {
  std::vector<RowRange> out;
  for (auto [b, e] : list) out.push_back(RowRange{b, e});
  return out;
}

std::vector<RowPart> parts(std::initializer_list<std::tuple<int64_t, int64_t, int64_t>> list) {
  std::vector<RowPart> out;
  for (auto [b, e, reader] : list) out.push_back(RowPart{{b, e}, reader});
  return out;
}

}  // namespace

TEST_CASE("replica rows: a range without chunk edges inside is not cut") {
  CHECK(split_rows(10, 20, 3, {0, 50}) == ranges({{10, 20}}));
  CHECK(split_rows(10, 20, 3, {10, 20}) == ranges({{10, 20}}));  // edges at the ends do not cut
  CHECK(split_rows(0, 100, 4, {}) == ranges({{0, 100}}));
  CHECK(split_rows(0, 100, 1, {0, 50}) == ranges({{0, 100}}));  // one part
}

TEST_CASE("replica rows: cuts fall at the chunk edges nearest to an even split") {
  CHECK(split_rows(0, 100, 4, {0, 25, 50, 75}) == ranges({{0, 25}, {25, 50}, {50, 75}, {75, 100}}));
  // Even cuts at 33 and 66: the nearest edges are 30 and 70.
  CHECK(split_rows(0, 100, 3, {0, 10, 20, 30, 40, 50, 60, 70, 80, 90}) ==
        ranges({{0, 30}, {30, 70}, {70, 100}}));
  CHECK(split_rows(0, 100, 4, {90, 0, 60, 30}) == ranges({{0, 30}, {30, 60}, {60, 100}}));  // any order
  // Global rows; edges outside the box are ignored.
  CHECK(split_rows(50, 150, 4, {0, 64, 100, 128, 192}) == ranges({{50, 64}, {64, 100}, {100, 128}, {128, 150}}));
  CHECK(split_rows(0, 10, 2, {0, 4, 6}) == ranges({{0, 4}, {4, 10}}));  // a tie goes to the lower edge
}

TEST_CASE("replica rows: more parts than chunk edges give one range per chunk") {
  CHECK(split_rows(0, 100, 8, {0, 40, 80}) == ranges({{0, 40}, {40, 80}, {80, 100}}));
  CHECK(split_rows(0, 10, 4, {0, 2, 3, 7, 8}) == ranges({{0, 2}, {2, 3}, {3, 7}, {7, 10}}));  // 8 unused
  CHECK(split_rows(0, 7, 2, {0, 3, 4}) == ranges({{0, 3}, {3, 7}}));
  CHECK(split_rows(0, 5, 3, {0, 4, 4}) == ranges({{0, 4}, {4, 5}}));  // a repeated edge cuts once
}

TEST_CASE("replica rows: an empty range has no ranges and no parts") {
  CHECK(split_rows(5, 5, 2, {0, 4, 6}).empty());
  ReplicaBox empty{5, 5, {0, 1}, {0}, 0, 0, 0};
  CHECK(plan_replica_reads({empty}, 2) == Plan{{}});
  CHECK(plan_replica_reads({}, 2).empty());
}

TEST_CASE("replica rows: a 0-D tensor is one part, read by the least-loaded rank") {
  const ReplicaBox scalar{0, 1, {0, 1, 2}, {}, 4, 0, 0};
  const ReplicaBox rows{0, 30, {0, 1, 2}, {0, 10, 20}, 30 * 8, 30 * 8, 30 * 8};
  CHECK(plan_replica_reads({scalar}, 3) == Plan{parts({{0, 1, 0}})});
  // Each rank has read 80 bytes of `rows`: the scalars go to ranks 0 and 1.
  CHECK(plan_replica_reads({rows, scalar, scalar}, 3) ==
        Plan{parts({{0, 10, 0}, {10, 20, 1}, {20, 30, 2}}), parts({{0, 1, 0}}), parts({{0, 1, 1}})});
}

TEST_CASE("replica rows: readers balance stored bytes across boxes, largest range first, ties to the lowest rank") {
  // Ranges of 50, 30 and 20 rows (even cuts at 33 and 66: edges 50 and 80).
  const ReplicaBox box{0, 100, {0, 1, 2}, {0, 50, 80}, 100, 100, 100};
  CHECK(plan_replica_reads({box}, 3) == Plan{parts({{0, 50, 0}, {50, 80, 1}, {80, 100, 2}})});
  // Stored bytes count, not raw: after 1000 raw bytes stored in 100 (rank 0)
  // and 500 uncompressed (rank 1), rank 0 is the less loaded.
  const ReplicaBox compressed{0, 10, {0, 1}, {}, 1000, 100, 1000};
  const ReplicaBox raw{0, 10, {0, 1}, {}, 500, 500, 500};
  CHECK(plan_replica_reads({compressed, raw, raw}, 2) ==
        Plan{parts({{0, 10, 0}}), parts({{0, 10, 1}}), parts({{0, 10, 0}})});
  // Readers are the box's ranks only.
  const ReplicaBox some{0, 100, {1, 3}, {0, 50}, 1000, 1000, 1000};
  CHECK(plan_replica_reads({some}, 4) == Plan{parts({{0, 50, 1}, {50, 100, 3}})});
}

// Plans of tessera/_replicated.py's own rule (0.5.0, before it called this
// one), computed once with that code and written here: the rule must not
// change Python's read-once plans. Inputs as plan_read_once passes them: the
// boxes that two or more ranks need, sorted by (name, start, lengths).
TEST_CASE("replica rows: plans equal those of the Python rule this replaced") {
  const int64_t M = 1 << 20;
  const Shape a_starts{0, 256, 512, 768}, b_starts{0, 100, 200, 300, 400, 500, 600, 700, 800, 900};
  // a: float32 [1024, 1024], 3:4 compressed; b: bfloat16 [1000, 1024];
  // c: float32 [2048, 1024], 1:8 compressed, one chunk; d: int64 rows
  // [1000, 3000) of 128 columns, nothing stored.
  const ReplicaBox a{0, 1024, {0, 1, 2}, a_starts, 1024 * 1024 * 4, 3 * M, 4 * M};
  const ReplicaBox b{0, 1000, {0, 1, 2}, b_starts, 1000 * 1024 * 2, 2 * M, 2 * M};
  const ReplicaBox c{0, 2048, {0, 1, 2}, {0}, 2048 * 1024 * 4, M, 8 * M};
  const ReplicaBox d{1000, 3000, {1, 2}, {0, 1000, 2000, 3000}, 2000 * 128 * 8, 0, 0};
  CHECK(plan_replica_reads({a, b, c, d}, 3) ==
        Plan{parts({{0, 256, 1}, {256, 768, 0}, {768, 1024, 2}}),
                    parts({{0, 300, 2}, {300, 700, 1}, {700, 1000, 2}}), parts({{0, 2048, 0}}),
                    parts({{1000, 2000, 1}, {2000, 3000, 2}})});
  // 4 ranks: rows [512, 1024) of a on ranks 0 and 3, b on 1..3, c on all.
  const ReplicaBox a_half{512, 1024, {0, 3}, a_starts, 512 * 1024 * 4, 3 * M, 4 * M};
  ReplicaBox b3 = b, c4 = c;
  b3.readers = {1, 2, 3};
  c4.readers = {0, 1, 2, 3};
  CHECK(plan_replica_reads({a_half, b3, c4}, 4) ==
        Plan{parts({{512, 768, 0}, {768, 1024, 3}}), parts({{0, 300, 2}, {300, 700, 1}, {700, 1000, 2}}),
                    parts({{0, 2048, 0}})});
}

TEST_CASE("property: split ranges tile the box, cut only at edges, at most one per part") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t begin = rng() % 50, end = begin + rng() % 60;
    const int64_t n = 1 + rng() % 6;
    Shape starts;
    for (int i = rng() % 8; i > 0; --i) starts.push_back(rng() % 120);
    const auto got = split_rows(begin, end, n, starts);
    if (end == begin) {
      CHECK(got.empty());
      continue;
    }
    REQUIRE(!got.empty());
    CHECK(static_cast<int64_t>(got.size()) <= n);
    CHECK(got.front().begin == begin);
    CHECK(got.back().end == end);
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].end > got[i].begin);
      if (i > 0) {
        CHECK(got[i].begin == got[i - 1].end);
        CHECK(std::count(starts.begin(), starts.end(), got[i].begin) > 0);
      }
    }
  }
}
