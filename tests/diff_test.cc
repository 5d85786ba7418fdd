// diff_checkpoints(): added, removed and changed entries, chunk counts and
// bytes, and --values statistics checked against values computed here.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "catalog/catalog.h"
#include "engine/tools/float_values.h"
#include "api/store_access.h"
#include "history_util.h"
#include "tessera/error.h"
#include "tessera/history.h"
#include "test_util.h"

using namespace tessera;
using engine::bfloat16_to_float;
using engine::element_reader;
using engine::float16_to_float;
using tessera::test::Model;
using tessera::test::raw_chunks;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::flip_byte;
using tessera::test::has;
namespace fs = std::filesystem;

namespace {


DiffOptions with_values() {
  DiffOptions o;
  o.values = true;
  return o;
}

// max |b - a| and ||b - a|| / ||a|| over a[begin, end), b[begin, end).
template <class T>
std::pair<double, double> expected_stats(const std::vector<T>& a, const std::vector<T>& b, size_t begin, size_t end) {
  double max = 0, d2 = 0, a2 = 0;
  for (size_t i = begin; i < end; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    max = std::max(max, std::fabs(y - x));
    d2 += (y - x) * (y - x);
    a2 += x * x;
  }
  return {max, std::sqrt(d2) / std::sqrt(a2)};
}

// IEEE binary16 bits of a float that binary16 holds exactly (normal or zero).
uint16_t half_bits(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  if ((b & 0x7fffffff) == 0) return sign;
  const int exponent = static_cast<int>((b >> 23) & 0xff) - 127;
  REQUIRE(exponent >= -14);
  REQUIRE(exponent <= 15);
  REQUIRE((b & 0x1fff) == 0);  // no bits below binary16's mantissa
  return static_cast<uint16_t>(sign | ((exponent + 15) << 10) | ((b >> 13) & 0x3ff));
}

uint16_t bfloat16_bits(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  REQUIRE((b & 0xffff) == 0);
  return static_cast<uint16_t>(b >> 16);
}

const EntryDiff* find_change(const DiffReport& r, const std::string& name) {
  for (const auto& d : r.changed)
    if (d.name == name) return &d;
  return nullptr;
}

constexpr size_t kChunkFloats = 16384;  // 64 KiB of float32

}  // namespace

TEST_CASE("float16 and bfloat16 widen to the exact float") {
  CHECK(float16_to_float(0x3C00) == 1.0f);
  CHECK(float16_to_float(0xC000) == -2.0f);
  CHECK(float16_to_float(0x3555) == 0.333251953125f);  // 0.25 * (1 + 341/1024)
  CHECK(float16_to_float(0x0001) == std::ldexp(1.0f, -24));                      // smallest subnormal
  CHECK(float16_to_float(0x03FF) == 1023 * std::ldexp(1.0f, -24));               // largest subnormal
  CHECK(float16_to_float(0x0400) == std::ldexp(1.0f, -14));                      // smallest normal
  CHECK(float16_to_float(0x7BFF) == 65504.0f);
  CHECK(float16_to_float(0x8000) == 0.0f);
  CHECK(std::signbit(float16_to_float(0x8000)));
  CHECK(float16_to_float(0xFC00) == -INFINITY);
  CHECK(std::isnan(float16_to_float(0x7E00)));
  CHECK(bfloat16_to_float(0x3F80) == 1.0f);
  CHECK(bfloat16_to_float(0xC040) == -3.0f);
  CHECK(!static_cast<bool>(element_reader("int32")));
  CHECK(static_cast<bool>(element_reader("bfloat16")));
}

TEST_CASE("diff of identical checkpoints, and of one with itself") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  Model m;
  m.set("x", kChunkFloats, 1);
  m.set("y", 3 * kChunkFloats, 2);
  StateDict sd = m.state();
  sd.add_value("step", int64_t{7});
  save(sd, store, "a");
  save(sd, store, "b");
  for (const auto& [a, b] : {std::pair{"a", "b"}, std::pair{"a", "a"}}) {
    const DiffReport r = diff_checkpoints(store, a, b, with_values());
    CHECK(r.identical());
    CHECK(r.unchanged == 3);
    CHECK(r.unchanged_bytes == 4 * 4 * kChunkFloats + 8);
  }
  CHECK_THROWS_AS(diff_checkpoints(store, "a", "nope"), NotFoundError);
}

TEST_CASE("one tensor changed in one chunk: counts, bytes, and values read from that chunk only") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model a;
  a.set("w", 4 * kChunkFloats, 1);  // 4 chunks
  a.set("other", 100, 2);
  save(a.state(), store, "a", so);
  Model b = a;
  b.tensors["w"][kChunkFloats + 5] += 0.5f;       // both in chunk 1
  b.tensors["w"][2 * kChunkFloats - 1] -= 0.125f;
  save(b.state(), store, "b", so);

  const DiffReport plain = diff_checkpoints(store, "a", "b");
  CHECK(!plain.identical());
  REQUIRE(plain.changed.size() == 1);
  const EntryDiff& d = plain.changed[0];
  CHECK(d.name == "w");
  CHECK(d.change == "content");
  CHECK(d.changed_chunks == 1);
  CHECK(d.chunks == 4);
  CHECK(d.changed_bytes == 4 * kChunkFloats);
  CHECK(d.logical_bytes == 16 * kChunkFloats);
  CHECK(!d.has_stats);
  CHECK(plain.unchanged == 1);
  CHECK(plain.unchanged_bytes == 400);

  auto [max, rel] = expected_stats(a.tensors["w"], b.tensors["w"], kChunkFloats, 2 * kChunkFloats);
  REQUIRE(max > 0);
  auto check_values = [&] {
    const DiffReport r = diff_checkpoints(store, "a", "b", with_values());
    REQUIRE(r.changed.size() == 1);
    const EntryDiff& v = r.changed[0];
    REQUIRE(v.has_stats);
    CHECK(v.stats.max_abs_diff == doctest::Approx(max).epsilon(1e-12));
    CHECK(v.stats.relative_l2 == doctest::Approx(rel).epsilon(1e-9));
    CHECK(v.stats.elements == kChunkFloats);
  };
  check_values();

  // Damage the shared, unchanged chunk 0: --values never reads it.
  auto& cat = StoreAccess::impl(store).catalog;
  auto pieces_of = [&](const std::string& ckpt) {
    auto p = cat.tensor(cat.find_checkpoint(ckpt)->id, "w")->pieces;
    std::sort(p.begin(), p.end(), [](const auto& x, const auto& y) { return x.box.offsets < y.box.offsets; });
    return p;
  };
  const auto chunk0 = cat.locate(pieces_of("a")[0].chunk);
  flip_byte(dir / "packs/" + chunk0->pack, chunk0->entry.offset + 3);
  check_values();

  // Damage a's copy of chunk 1, which it does read: an error naming what is damaged.
  const auto chunk1 = cat.locate(pieces_of("a")[1].chunk);
  flip_byte(dir / "packs/" + chunk1->pack, chunk1->entry.offset + 3);
  try {
    diff_checkpoints(store, "a", "b", with_values());
    FAIL("read a damaged chunk without complaint");
  } catch (const CorruptionError& e) {
    CHECK(has(e.what(), "checkpoint 'a', tensor 'w'"));
    CHECK(has(e.what(), chunk1->entry.id.hex()));
    CHECK(has(e.what(), chunk1->pack));
  }
  CHECK(diff_checkpoints(store, "a", "b").changed.size() == 1);  // without values: no reads at all
}

TEST_CASE("entries added and removed; dtype, shape, kind and value changes") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  std::vector<float> keep(100, 1.5f), gone(10, 2.0f), dt(8, 3.0f), sh(8, 4.0f), added(4, 5.0f), k(2, 6.0f);
  std::vector<double> dt64(8, 3.0);
  StateDict a;
  a.add_tensor("keep", TensorView::contiguous("float32", 4, keep.data(), {100}));
  a.add_tensor("gone", TensorView::contiguous("float32", 4, gone.data(), {10}));
  a.add_tensor("dt", TensorView::contiguous("float32", 4, dt.data(), {8}));
  a.add_tensor("sh", TensorView::contiguous("float32", 4, sh.data(), {8}));
  a.add_value("v", int64_t{1});
  a.add_value("k", int64_t{5});
  a.add_value("same", std::string("x"));
  save(a, store, "a");
  StateDict b;
  b.add_tensor("keep", TensorView::contiguous("float32", 4, keep.data(), {100}));
  b.add_tensor("new", TensorView::contiguous("float32", 4, added.data(), {4}));
  b.add_tensor("dt", TensorView::contiguous("float64", 8, dt64.data(), {8}));
  b.add_tensor("sh", TensorView::contiguous("float32", 4, sh.data(), {4, 2}));
  b.add_tensor("k", TensorView::contiguous("float32", 4, k.data(), {2}));
  b.add_value("v", int64_t{2});
  b.add_value("same", std::string("x"));
  save(b, store, "b");

  const DiffReport r = diff_checkpoints(store, "a", "b", with_values());
  CHECK(r.added == std::vector<std::string>{"new"});
  CHECK(r.removed == std::vector<std::string>{"gone"});
  std::vector<std::string> changed;
  for (const auto& d : r.changed) changed.push_back(d.name + ":" + d.change);
  CHECK(changed == std::vector<std::string>{"dt:dtype", "k:kind", "sh:shape", "v:value"});
  CHECK(r.unchanged == 2);
  CHECK(r.unchanged_bytes == 400 + 1);

  const EntryDiff* d = find_change(r, "dt");
  REQUIRE(d);
  CHECK(d->dtype_a == "float32");
  CHECK(d->dtype_b == "float64");
  CHECK(d->changed_bytes == 64);
  CHECK(!d->has_stats);  // dtypes differ: no element-wise statistics
  d = find_change(r, "sh");
  REQUIRE(d);
  CHECK(d->shape_a == Shape{8});
  CHECK(d->shape_b == Shape{4, 2});
  d = find_change(r, "k");
  REQUIRE(d);
  CHECK(d->kind_a == "int");
  CHECK(d->kind_b == "tensor");
  CHECK(d->changed_bytes == 8);
  d = find_change(r, "v");
  REQUIRE(d);
  CHECK(d->kind_a == "int");
  CHECK(d->kind_b == "int");

  // Reversed: added and removed swap.
  const DiffReport back = diff_checkpoints(store, "b", "a");
  CHECK(back.added == std::vector<std::string>{"gone"});
  CHECK(back.removed == std::vector<std::string>{"new"});
}

TEST_CASE("--values on bfloat16, float16 and float64, from the bits") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  const std::vector<float> va = {1, 2, -0.5f, 0.25f, 3, 0, -1, 8}, vb = {1, 2.5f, -0.5f, 0.25f, 3, 0, -1.5f, 8};
  std::vector<uint16_t> bf_a, bf_b, h_a, h_b;
  for (float f : va) bf_a.push_back(bfloat16_bits(f)), h_a.push_back(half_bits(f));
  for (float f : vb) bf_b.push_back(bfloat16_bits(f)), h_b.push_back(half_bits(f));
  std::vector<double> d_a(va.begin(), va.end()), d_b(vb.begin(), vb.end());
  d_b[3] = 0.25 + 1e-12;  // a difference float32 could not hold
  auto state = [](std::vector<uint16_t>& bf, std::vector<uint16_t>& h, std::vector<double>& d) {
    StateDict sd;
    sd.add_tensor("bf", TensorView::contiguous("bfloat16", 2, bf.data(), {8}));
    sd.add_tensor("h", TensorView::contiguous("float16", 2, h.data(), {2, 4}));
    sd.add_tensor("d", TensorView::contiguous("float64", 8, d.data(), {8}));
    return sd;
  };
  save(state(bf_a, h_a, d_a), store, "a");
  save(state(bf_b, h_b, d_b), store, "b");
  const DiffReport r = diff_checkpoints(store, "a", "b", with_values());
  REQUIRE(r.changed.size() == 3);

  const auto [max16, rel16] = expected_stats(va, vb, 0, 8);
  CHECK(max16 == 0.5);
  for (const char* name : {"bf", "h"}) {
    CAPTURE(name);
    const EntryDiff* d = find_change(r, name);
    REQUIRE(d);
    REQUIRE(d->has_stats);
    CHECK(d->stats.max_abs_diff == max16);
    CHECK(d->stats.relative_l2 == doctest::Approx(rel16).epsilon(1e-15));
    CHECK(d->stats.elements == 8);
  }
  const auto [max64, rel64] = expected_stats(d_a, d_b, 0, 8);
  const EntryDiff* d = find_change(r, "d");
  REQUIRE(d);
  CHECK(d->stats.max_abs_diff == max64);
  CHECK(d->stats.relative_l2 == doctest::Approx(rel64).epsilon(1e-15));
}

TEST_CASE("checkpoints saved on different chunk grids are compared by their bytes") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  Model a;
  a.set("w", 4 * kChunkFloats, 1);
  save(a.state(), store, "a", raw_chunks(64 << 10));  // 4 pieces
  save(a.state(), store, "same", raw_chunks(32 << 10));  // 8 pieces, same values
  Model b = a;
  b.tensors["w"][40000] = 1000.0f;  // piece 4 of 8: elements [32768, 40960)
  save(b.state(), store, "b", raw_chunks(32 << 10));

  CHECK(diff_checkpoints(store, "a", "same").identical());
  const DiffReport r = diff_checkpoints(store, "a", "b", with_values());
  REQUIRE(r.changed.size() == 1);
  const EntryDiff& d = r.changed[0];
  CHECK(d.change == "content");
  CHECK(d.chunks == 8);
  CHECK(d.changed_chunks == 1);
  CHECK(d.changed_bytes == 32 << 10);
  const auto [max, rel] = expected_stats(a.tensors["w"], b.tensors["w"], 32768, 40960);
  REQUIRE(d.has_stats);
  CHECK(d.stats.max_abs_diff == doctest::Approx(max).epsilon(1e-12));
  CHECK(d.stats.relative_l2 == doctest::Approx(rel).epsilon(1e-9));
  CHECK(d.stats.elements == 8192);
}

TEST_CASE("--values edge cases: a zero norm, NaNs, and integer tensors") {
  TempDir dir("diff");
  Store store = Store::open(dir.path());
  std::vector<float> zeros(4, 0.0f), ones(4, 1.0f), nan_a = {NAN, 1, 2, 3}, nan_b = {NAN, 1, 2, 4}, nan_c = {NAN, NAN, 2, 3};
  std::vector<int32_t> ia = {1, 2}, ib = {1, 3};
  auto save_one = [&](const std::string& ckpt, std::vector<float>& z, std::vector<float>& n, std::vector<int32_t>& i) {
    StateDict sd;
    sd.add_tensor("z", TensorView::contiguous("float32", 4, z.data(), {4}));
    sd.add_tensor("n", TensorView::contiguous("float32", 4, n.data(), {4}));
    sd.add_tensor("i", TensorView::contiguous("int32", 4, i.data(), {2}));
    save(sd, store, ckpt);
  };
  save_one("a", zeros, nan_a, ia);
  save_one("b", ones, nan_b, ib);
  save_one("c", ones, nan_c, ib);
  const DiffReport r = diff_checkpoints(store, "a", "b", with_values());
  const EntryDiff* z = find_change(r, "z");
  REQUIRE(z);
  CHECK(z->stats.max_abs_diff == 1.0);
  CHECK(std::isinf(z->stats.relative_l2));
  const EntryDiff* n = find_change(r, "n");  // the NaN is in both at the same place: equal there
  REQUIRE(n);
  CHECK(n->stats.max_abs_diff == 1.0);
  CHECK(std::isnan(n->stats.relative_l2));  // ||a|| holds the NaN
  const EntryDiff* i = find_change(r, "i");
  REQUIRE(i);
  CHECK(i->changed_chunks == 1);
  CHECK(!i->has_stats);
  const DiffReport rc = diff_checkpoints(store, "a", "c", with_values());
  const EntryDiff* nn = find_change(rc, "n");
  REQUIRE(nn);
  CHECK(std::isnan(nn->stats.max_abs_diff));  // 1 -> NaN
}
