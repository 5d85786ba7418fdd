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
  e.id = chunk_id_of("abcd", 4);
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
      catalog::TensorRecord{0, "w", "float32", 4, {1}, {catalog::Piece{Box{{0}, {1}}, chunk_id_of("zz", 2)}}});
  CHECK(error_of([&] { cat.commit(bad); }).find("tensor 'w'") != std::string::npos);
  CHECK(cat.list_checkpoints().size() == 1);
  auto t = cat.tensor(info->id, "w");
  REQUIRE(t);
  CHECK(t->pieces.size() == 1);
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
