#include <doctest/doctest.h>

#include <fstream>

#include "catalog/catalog.h"
#include "test_util.h"

using namespace tessera;
using catalog::Catalog;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::has;


TEST_CASE("a new catalog carries the application id and the latest schema version") {
  TempDir dir("cat");
  auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
  CHECK(cat.schema_version() == Catalog::latest_schema_version());
  CHECK(cat.db().pragma_int("application_id") == catalog::kApplicationId);
  CHECK(cat.db().pragma_int("foreign_keys") == 1);
  // Re-opening is idempotent, read-only works.
  auto again = Catalog::open(dir / "c.db", Catalog::Mode::kReadOnly, false);
  CHECK(again.list_checkpoints().empty());
}

TEST_CASE("a catalog from a newer tessera is refused with a message that says so") {
  TempDir dir("cat");
  {
    auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
    cat.db().exec("PRAGMA user_version = 99");
  }
  for (auto mode : {Catalog::Mode::kReadOnly, Catalog::Mode::kReadWrite}) {
    std::string m = error_of([&] { Catalog::open(dir / "c.db", mode, false); });
    CHECK(m.find("schema version 99") != std::string::npos);
    CHECK(m.find("newer than this tessera supports") != std::string::npos);
  }
}

TEST_CASE("foreign files are not catalogs") {
  TempDir dir("cat");
  std::ofstream(dir / "text.db") << "this is a text file, not a database, and it is long enough to have a header";
  CHECK(error_of([&] { Catalog::open(dir / "text.db", Catalog::Mode::kReadOnly, false); }).find("not a tessera catalog") !=
        std::string::npos);
  {
    catalog::Db other(dir / "other.db", 0x00000002 | 0x00000004);  // READWRITE | CREATE
    other.exec("CREATE TABLE t (x)");
  }
  CHECK(error_of([&] { Catalog::open(dir / "other.db", Catalog::Mode::kReadWrite, false); })
            .find("not a tessera catalog") != std::string::npos);
}

TEST_CASE("commit is one transaction: a bad reference leaves the catalog unchanged") {
  TempDir dir("cat");
  auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
  pack::ChunkEntry e;
  e.id = pack::chunk_id_of("abcd", 4);
  e.raw_len = e.stored_len = 4;
  catalog::NewCheckpoint c;
  c.name = "step-1";
  c.packs.push_back(pack::PackInfo{"p1.pack", 100, {e}});
  c.tensors.push_back(catalog::TensorRecord{0, "w", "float32", 4, {1}, {catalog::Piece{Box{{0}, {1}}, e.id}}});
  c.values.push_back(catalog::ValueRecord{"step", Value{int64_t{7}}});
  c.values.push_back(catalog::ValueRecord{"note", Value{std::string("hi")}});
  c.values.push_back(catalog::ValueRecord{"rng", Value{Bytes{std::string("\0\1\2", 3)}}});
  c.values.push_back(catalog::ValueRecord{"lr", Value{0.5}});
  cat.commit(c);
  auto info = cat.find_checkpoint("step-1");
  REQUIRE(info);
  CHECK(info->tensor_count == 1);
  CHECK(info->logical_bytes == 4);
  auto values = cat.values(info->id);
  REQUIRE(values.size() == 4);
  CHECK(values[0].name == "lr");  // ordered by name
  CHECK(values[0].value == Value{0.5});
  CHECK(values[1].value == Value{std::string("hi")});
  CHECK(values[2].value == Value{Bytes{std::string("\0\1\2", 3)}});
  CHECK(values[3].value == Value{int64_t{7}});

  CHECK(error_of([&] { cat.commit(c); }).find("already exists") != std::string::npos);

  catalog::NewCheckpoint bad;
  bad.name = "step-2";
  bad.tensors.push_back(
      catalog::TensorRecord{0, "w", "float32", 4, {1}, {catalog::Piece{Box{{0}, {1}}, pack::chunk_id_of("zz", 2)}}});
  CHECK(error_of([&] { cat.commit(bad); }).find("tensor 'w'") != std::string::npos);
  CHECK(cat.list_checkpoints().size() == 1);
  auto t = cat.tensor(info->id, "w");
  REQUIRE(t);
  CHECK(t->pieces.size() == 1);
}

namespace {

// A chunk entry for id `i` at `offset` of its pack, `len` stored bytes.
pack::ChunkEntry entry(int i, uint64_t offset, uint64_t len) {
  pack::ChunkEntry e;
  e.id = pack::chunk_id_of(&i, sizeof i);
  e.offset = offset;
  e.raw_len = e.stored_len = len;
  e.block_sums = {static_cast<uint64_t>(i)};
  return e;
}

// A tensor "t<i>" of 1 element per piece, one piece per id.
catalog::TensorRecord tensor_of(const std::string& name, const std::vector<pack::ChunkId>& ids) {
  catalog::TensorRecord t{0, name, "uint8", 1, {static_cast<int64_t>(ids.size())}, {}};
  for (size_t j = 0; j < ids.size(); ++j)
    t.pieces.push_back(catalog::Piece{Box{{static_cast<int64_t>(j)}, {1}}, ids[j]});
  return t;
}

}  // namespace

TEST_CASE("chunk rows go in batches: committed chunks keep their rows and are not counted as added") {
  TempDir dir("cat");
  auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
  // "a": 300 new chunks (several batches and a remainder), stored_len 10.
  catalog::NewCheckpoint a;
  a.name = "a";
  a.packs.push_back(pack::PackInfo{"pa.pack", 10000, {}});
  std::vector<pack::ChunkId> ids_a;
  for (int i = 0; i < 300; ++i) {
    a.packs[0].chunks.push_back(entry(i, 10 * i, 10));
    ids_a.push_back(a.packs[0].chunks.back().id);
  }
  a.tensors.push_back(tensor_of("ta", ids_a));
  cat.commit(a);
  CHECK(cat.find_checkpoint("a")->added_bytes == 3000);
  CHECK(cat.find_checkpoint("a")->stored_bytes == 3000);
  // "b": a pack of 200 entries where every third chunk (67 of them) is
  // committed already (so every batch meets one) and stored here with 99
  // bytes; 133 new ones of 7 bytes, of which 20 appear again in a second
  // pack of this save.
  catalog::NewCheckpoint b;
  b.name = "b";
  b.packs.push_back(pack::PackInfo{"pb.pack", 10000, {}});
  b.packs.push_back(pack::PackInfo{"pc.pack", 10000, {}});
  std::vector<pack::ChunkId> ids_b;
  int64_t new_bytes = 0;
  for (int k = 0; k < 200; ++k) {
    const bool old = k % 3 == 0;
    const int i = old ? k : 1000 + k;
    b.packs[0].chunks.push_back(entry(i, 100 * k, old ? 99 : 7));
    if (!old) new_bytes += 7;
    if (!old && k < 60) b.packs[1].chunks.push_back(entry(i, 5 * k, 7));
    ids_b.push_back(b.packs[0].chunks.back().id);
  }
  b.tensors.push_back(tensor_of("tb", ids_b));
  cat.commit(b);
  const auto info = cat.find_checkpoint("b");
  CHECK(info->added_bytes == new_bytes);
  CHECK(info->stored_bytes == new_bytes + 67 * 10);  // committed rows' lengths, not this save's
  for (int k = 0; k < 200; k += 3) {
    const auto loc = cat.locate(ids_b[k]);
    REQUIRE(loc);
    CHECK(loc->pack == "pa.pack");  // the first copy stays
    CHECK(loc->entry.offset == 10u * k);
    CHECK(loc->entry.stored_len == 10);
  }
  auto count = cat.db().prepare("SELECT count(*) FROM chunks");
  count.step();
  CHECK(count.column_int(0) == 300 + 133);
  const auto t = cat.tensor(info->id, "tb");
  REQUIRE(t);
  CHECK(t->pieces.size() == 200);
}

TEST_CASE("locate_sorted finds every committed id among missing ones, dense or sparse, as locate does") {
  TempDir dir("cat");
  auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
  // 2,000 committed chunks in two packs; asked for: runs of neighbours (a
  // walk steps), lone ids far apart (it seeks), and ids never committed
  // before, between and after them.
  catalog::NewCheckpoint a;
  a.name = "a";
  a.packs.push_back(pack::PackInfo{"p0.pack", 100000, {}});
  a.packs.push_back(pack::PackInfo{"p1.pack", 100000, {}});
  std::vector<pack::ChunkId> committed;
  for (int i = 0; i < 2000; ++i) {
    a.packs[i % 2].chunks.push_back(entry(i, 10 * i, 10));
    committed.push_back(a.packs[i % 2].chunks.back().id);
  }
  a.tensors.push_back(tensor_of("t", committed));
  cat.commit(a);
  std::sort(committed.begin(), committed.end());
  for (const size_t stride : {size_t{1}, size_t{3}, size_t{97}, size_t{1999}}) {
    CAPTURE(stride);
    std::vector<pack::ChunkId> asked;
    for (size_t k = 0; k < committed.size(); k += stride) asked.push_back(committed[k]);
    for (int i = 5000; i < 5040; ++i) asked.push_back(entry(i, 0, 1).id);  // never committed
    std::sort(asked.begin(), asked.end());
    const auto found = cat.locate_sorted(asked);
    REQUIRE(found.size() == asked.size());
    size_t hits = 0;
    for (size_t k = 0; k < asked.size(); ++k) {
      const auto one = cat.locate(asked[k]);
      REQUIRE(found[k].has_value() == one.has_value());
      if (!one) continue;
      ++hits;
      CHECK(found[k]->entry.id == asked[k]);
      CHECK(found[k]->pack == one->pack);
      CHECK(found[k]->pack_id == one->pack_id);
      CHECK(found[k]->entry.offset == one->entry.offset);
      CHECK(found[k]->entry.block_sums == one->entry.block_sums);
    }
    CHECK(hits == (committed.size() + stride - 1) / stride);
  }
  CHECK(cat.locate_sorted({}).empty());
  // locate_all: any order, repeats allowed.
  const std::vector<pack::ChunkId> mixed{committed[7], entry(9999, 0, 1).id, committed[3], committed[7]};
  const auto all = cat.locate_all(mixed);
  REQUIRE(all.size() == 4);
  CHECK((all[0] && all[0]->entry.id == committed[7]));
  CHECK(!all[1]);
  CHECK((all[2] && all[2]->entry.id == committed[3]));
  CHECK((all[3] && all[3]->entry.id == committed[7]));
}

TEST_CASE("shapes round-trip through JSON") {
  for (Shape s : {Shape{}, Shape{0}, Shape{1, 2, 3}, Shape{int64_t{1} << 40}})
    CHECK(catalog::shape_from_json(catalog::shape_to_json(s)) == s);
  CHECK_THROWS(catalog::shape_from_json("[1,"));
  CHECK_THROWS(catalog::shape_from_json("x"));
}

TEST_CASE("opening a current catalog for writing writes nothing") {
  TempDir dir("cat");
  Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, true);
  auto bytes = [&] {
    std::ifstream in(dir / "c.db", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string before = bytes();
  {
    auto cat = Catalog::open(dir / "c.db", Catalog::Mode::kReadWrite, false);
    CHECK(cat.schema_version() == Catalog::latest_schema_version());
  }
  CHECK(bytes() == before);  // not even the header's change counter
  CHECK_FALSE(std::filesystem::exists(dir / "c.db-journal"));
}

TEST_CASE("layout and tensor-list blobs round-trip; damaged ones are refused naming what they describe") {
  std::vector<catalog::Piece> pieces;
  for (int64_t r = 0; r < 3; ++r)
    pieces.push_back(catalog::Piece{Box{{r * 4, 0}, {4, 1000}}, pack::chunk_id_of(&r, sizeof r)});
  const std::string blob = catalog::encode_pieces(pieces, 2);
  const auto back = catalog::decode_pieces(blob, 2, "layout of tensor 'w'");
  REQUIRE(back.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(back[i].box == pieces[i].box);
    CHECK(back[i].chunk == pieces[i].chunk);
  }
  // Only the pieces overlapping a region.
  const Box rows_5_to_6{{5, 0}, {2, 1000}};
  const auto some = catalog::decode_pieces(blob, 2, "w", &rows_5_to_6);
  REQUIRE(some.size() == 1);
  CHECK(some[0].box == pieces[1].box);
  const auto ids = catalog::decode_ids(catalog::encode_ids({7, 3, 1000000}), "list");
  CHECK(ids == std::vector<int64_t>{3, 7, 1000000});
  // Truncated, extended, foreign format: each refused, naming the culprit.
  for (const std::string& bad : {blob.substr(0, blob.size() - 1), blob + "x", "\x02" + blob.substr(1), std::string()}) {
    const std::string m = error_of([&] { catalog::decode_pieces(bad, 2, "layout of tensor 'w'"); });
    CHECK(has(m, "layout of tensor 'w'"));
  }
  CHECK(has(error_of([&] { catalog::decode_ids("\x05\x01", "tensor list of checkpoint 3"); }), "checkpoint 3"));
  // Numbers that fit a varint but not the arithmetic after it (found by the
  // fuzz suite as signed overflows): refused by name, not wrapped.
  {
    const std::string max = catalog::encode_ids({INT64_MAX});  // one id: INT64_MAX as the first delta
    CHECK(catalog::decode_ids(max, "list") == std::vector<int64_t>{INT64_MAX});
    std::string two;  // count 2, deltas INT64_MAX then 1: the second id passes INT64_MAX
    two.push_back('\x02');
    two.append(max.substr(1));
    two.push_back('\x01');
    const std::string m = error_of([&] { catalog::decode_ids(two, "tensor list of checkpoint 9"); });
    CHECK(has(m, "tensor list of checkpoint 9"));
    CHECK(has(m, "an id out of range"));
    // A piece whose offset plus size passes INT64_MAX: offset INT64_MAX, size 1 (rank 1).
    std::vector<catalog::Piece> one{catalog::Piece{Box{{INT64_MAX}, {1}}, pieces[0].chunk}};
    const std::string far = catalog::encode_pieces(one, 1);
    const std::string pm = error_of([&] { catalog::decode_pieces(far, 1, "layout of tensor 'far'"); });
    CHECK(has(pm, "layout of tensor 'far'"));
    CHECK(has(pm, "a piece that ends past the largest coordinate"));
    // A coordinate beyond INT64_MAX (a 64-bit varint with the top bit set).
    std::string huge = far.substr(0, 2);  // format byte, count 1
    for (int i = 0; i < 9; ++i) huge.push_back('\xff');
    huge.push_back('\x01');
    huge.append(far.substr(2 + 9));  // the size varint and the chunk id after the 9-byte offset
    CHECK(has(error_of([&] { catalog::decode_pieces(huge, 1, "layout of tensor 'huge'"); }), "a coordinate out of range"));
  }
  // Layouts differ by digest when anything differs.
  const auto d = catalog::layout_digest("float32", 4, {12, 1000}, blob);
  CHECK(d == catalog::layout_digest("float32", 4, {12, 1000}, blob));
  CHECK(d != catalog::layout_digest("bfloat16", 2, {12, 1000}, blob));
  CHECK(d != catalog::layout_digest("float32", 4, {12, 1001}, blob));
}
