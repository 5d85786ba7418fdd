// A store's history without LibTorch: rm, gc (deleting, rewriting, grace
// period, re-checks under the write lock), keep_last, ls's added bytes and
// show's sharing marks. Crash safety of rm+gc and save is in crash_test.cc;
// diff in diff_test.cc.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "catalog/catalog.h"
#include "catalog/maintenance.h"
#include "engine/maintenance/history_hooks.h"
#include "api/store_access.h"
#include "history_util.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "tessera/parts.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::files_in;
using tessera::test::minus;
using tessera::test::Model;
using tessera::test::raw_chunks;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::has;
namespace fs = std::filesystem;

namespace {



std::vector<std::string> names_of(const Store& store) {
  std::vector<std::string> out;
  for (const auto& c : store.checkpoints()) out.push_back(c.name);
  return out;
}

std::vector<std::string> file_names(const std::vector<GcFile>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.name);
  return out;
}

std::vector<std::string> as_vector(const std::set<std::string>& s) { return {s.begin(), s.end()}; }

// The one name in `after` that `before` lacks (the pack a write_part added).
std::string only_new(const std::set<std::string>& after, const std::set<std::string>& before) {
  std::vector<std::string> added;
  for (const auto& n : after)
    if (!before.count(n)) added.push_back(n);
  REQUIRE(added.size() == 1);
  return added[0];
}

// Every row of every catalog table, as text: equal dumps, equal catalogs.
std::string catalog_dump(const std::string& store) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((store + "/catalog.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  std::string out;
  for (const char* table : {"packs", "chunks", "checkpoints", "layouts", "tensors", "entries"}) {
    out += std::string("# ") + table + "\n";
    sqlite3_stmt* st = nullptr;
    const std::string sql = std::string("SELECT * FROM ") + table + " ORDER BY 1, 2, 3";
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st, c));
        const int n = sqlite3_column_bytes(st, c);
        char hex[3];
        for (int i = 0; i < n; ++i) {
          std::snprintf(hex, sizeof hex, "%02x", p[i]);
          out += hex;
        }
        out += '|';
      }
      out += '\n';
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

// Names, sizes and modification times of every file under the store.
std::string listing(const std::string& store) {
  std::string out;
  for (const auto& e : fs::recursive_directory_iterator(store)) {
    out += e.path().string();
    if (e.is_regular_file())
      out += " " + std::to_string(e.file_size()) + " " +
             std::to_string(fs::last_write_time(e.path()).time_since_epoch().count());
    out += '\n';
  }
  return out;
}

void make_old(const std::string& path) {
  fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(2));
}

GcOptions no_grace() {
  GcOptions o;
  o.grace = std::chrono::seconds(0);
  return o;
}

constexpr size_t kChunkFloats = 16384;  // 64 KiB of float32: one raw chunk with raw_chunks(64 KiB)

}  // namespace

TEST_CASE("rm refuses unknown names, all or nothing, and needs a writable store") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  Model m;
  m.set("x", 1000, 1);
  for (const char* n : {"a", "b", "c"}) save(m.state(), store, n);

  std::string err = error_of([&] { remove_checkpoints(store, {"a", "nope-1", "nope-2"}); });
  CHECK(has(err, "checkpoints 'nope-1', 'nope-2' not found"));
  CHECK(has(err, dir.path()));
  CHECK(has(err, "nothing removed"));
  CHECK(names_of(store) == std::vector<std::string>{"a", "b", "c"});
  CHECK_THROWS_AS(remove_checkpoints(store, {"nope"}), NotFoundError);

  Store reader = Store::open_read_only(dir.path());
  CHECK(has(error_of([&] { remove_checkpoints(reader, {"a"}); }), "read-only"));
  CHECK(error_of([&] { plan_gc(reader); }).empty());  // planning works read-only
  CHECK_THROWS_AS(run_gc(reader, plan_gc(reader)), StoreError);

  remove_checkpoints(store, {"c", "a", "c"});  // a name twice counts once
  CHECK(names_of(store) == std::vector<std::string>{"b"});
  CHECK(m.loads_exactly(store, "b"));
  // The cascade took the removed checkpoints' tensors and pieces with them.
  auto st = StoreAccess::impl(store).catalog.db().prepare("SELECT count(*) FROM tensors");
  st.step();
  CHECK(st.column_int(0) == 1);
}

TEST_CASE("rm then gc frees exactly the packs only the removed checkpoint used") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model a, b, c;
  a.set("x", kChunkFloats, 1);
  a.set("y", kChunkFloats, 2);
  b = a;
  b.set("y", kChunkFloats, 3);
  c = a;
  c.set("y", kChunkFloats, 4);
  save(a.state(), store, "a", so);
  const auto packs_a = files_in(dir.path(), "packs");
  save(b.state(), store, "b", so);
  const auto packs_b = minus(files_in(dir.path(), "packs"), packs_a);
  save(c.state(), store, "c", so);
  const auto packs_c = minus(minus(files_in(dir.path(), "packs"), packs_a), packs_b);
  REQUIRE(packs_b.size() == 1);  // b wrote only its y
  const auto size_b = fs::file_size(dir / "packs/" + *packs_b.begin());

  remove_checkpoints(store, {"b"});
  CHECK(names_of(store) == std::vector<std::string>{"a", "c"});
  CHECK(files_in(dir.path(), "packs").size() == 3);  // rm alone deletes no file

  const GcPlan plan = plan_gc(store);
  CHECK(file_names(plan.delete_packs) == as_vector(packs_b));
  CHECK(plan.rewrite_packs.empty());  // a's pack is all live: x (a, c) and y (a)
  CHECK(plan.unknown_packs.empty());
  CHECK(plan.orphan_chunks == 1);
  CHECK(plan.bytes_freed() == size_b);

  const GcResult r = run_gc(store, plan);
  CHECK(r.deleted_packs == as_vector(packs_b));
  CHECK(r.chunks_dropped == 1);
  CHECK(r.bytes_freed == static_cast<int64_t>(size_b));
  CHECK(r.skipped.empty());
  std::set<std::string> expected = packs_a;
  expected.insert(packs_c.begin(), packs_c.end());
  CHECK(files_in(dir.path(), "packs") == expected);
  CHECK(a.loads_exactly(store, "a"));
  CHECK(c.loads_exactly(store, "c"));
  CHECK(verify(store).ok());
  CHECK(plan_gc(store).empty());  // nothing left to do

  // Removing everything and collecting leaves an empty store that still works.
  remove_checkpoints(store, {"a", "c"});
  run_gc(store, plan_gc(store));
  CHECK(files_in(dir.path(), "packs").empty());
  CHECK(files_in(dir.path(), "tmp").empty());
  save(a.state(), store, "again", so);
  CHECK(a.loads_exactly(store, "again"));
}

TEST_CASE("gc rewrites a mostly dead pack: live chunks move as stored, the old pack goes") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  SaveOptions so = raw_chunks(64 << 10);
  so.compression = Compression::kAuto;
  Model a;
  a.set("x", kChunkFloats, 1);          // 1 chunk, kept
  a.set("y", 4 * kChunkFloats, 2);      // 4 raw chunks, dropped
  a.tensors["s"].assign(kChunkFloats, 1.0f);  // compresses: kept, stored compressed
  save(a.state(), store, "a", so);
  const auto packs_a = files_in(dir.path(), "packs");
  REQUIRE(packs_a.size() == 1);
  const std::string old_pack = *packs_a.begin();
  Model c = a;
  c.tensors.erase("y");
  c.set("z", kChunkFloats, 3);
  save(c.state(), store, "c", so);
  remove_checkpoints(store, {"a"});

  auto& cat = StoreAccess::impl(store).catalog;
  const auto s_chunk = cat.tensor(cat.find_checkpoint("c")->id, "s")->pieces.at(0).chunk;
  const auto s_before = cat.locate(s_chunk);
  REQUIRE(s_before);
  REQUIRE(s_before->entry.codec != pack::Codec::kRaw);
  const auto x_chunk = cat.tensor(cat.find_checkpoint("c")->id, "x")->pieces.at(0).chunk;
  const auto x_before = cat.locate(x_chunk);
  REQUIRE(x_before);
  const uint64_t live = x_before->entry.stored_len + s_before->entry.stored_len;

  GcOptions strict;
  strict.rewrite_below = 0.15;  // about 20% live: not below 15%
  CHECK(plan_gc(store, strict).rewrite_packs.empty());

  const GcPlan plan = plan_gc(store);  // default 0.5
  REQUIRE(plan.rewrite_packs.size() == 1);
  CHECK(plan.rewrite_packs[0].name == old_pack);
  CHECK(plan.rewrite_packs[0].live_chunks == 2);
  CHECK(plan.rewrite_packs[0].live_bytes == live);
  CHECK(plan.delete_packs.empty());
  CHECK(plan.orphan_chunks == 4);
  CHECK(plan.bytes_freed() == fs::file_size(dir / "packs/" + old_pack) - live);

  GcOptions reporting;
  std::vector<Progress> reports;
  reporting.progress = [&](const Progress& p) { reports.push_back(p); };
  const GcResult r = run_gc(store, plan, reporting);
  // Progress counts the live bytes copied, up to the plan's total, then one finished report.
  REQUIRE(reports.size() >= 2);
  for (size_t i = 0; i < reports.size(); ++i) {
    CHECK(reports[i].operation == "gc");
    CHECK(reports[i].total_bytes == live);
    CHECK(reports[i].finished == (i + 1 == reports.size()));
  }
  CHECK(reports.back().done_bytes == live);
  CHECK(r.rewritten_packs == std::vector<std::string>{old_pack});
  REQUIRE(r.new_packs.size() == 1);
  CHECK(r.chunks_moved == 2);
  CHECK(r.chunks_dropped == 4);
  CHECK(r.deleted_packs == std::vector<std::string>{old_pack});
  CHECK(!fs::exists(dir / "packs/" + old_pack));
  const auto new_size = fs::file_size(dir / "packs/" + r.new_packs[0]);
  // Stored bytes as they were, plus the footer (raw entries carry block sums).
  CHECK(new_size == live + (56 + 8 * x_before->entry.block_sums.size()) + (56 + 8 * s_before->entry.block_sums.size()) + 40);
  const auto s_after = cat.locate(s_chunk);
  REQUIRE(s_after);
  CHECK(s_after->pack == r.new_packs[0]);
  CHECK(s_after->entry.codec == s_before->entry.codec);
  CHECK(s_after->entry.stored_len == s_before->entry.stored_len);
  CHECK(s_after->entry.stored_sum == s_before->entry.stored_sum);
  CHECK(c.loads_exactly(store, "c"));
  CHECK(verify(store).ok());
  CHECK(plan_gc(store).empty());
}

TEST_CASE("planning changes nothing: files and catalog stay as they were") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  Model m;
  m.set("x", kChunkFloats, 1);
  save(m.state(), store, "a", raw_chunks(64 << 10));
  m.set("x", kChunkFloats, 2);
  save(m.state(), store, "b", raw_chunks(64 << 10));
  remove_checkpoints(store, {"a"});
  std::ofstream(dir / "tmp/old.partial") << "leftover";
  make_old(dir / "tmp/old.partial");
  const std::string files_before = listing(dir.path()), catalog_before = catalog_dump(dir.path());

  const GcPlan plan = plan_gc(store, no_grace());
  CHECK(plan.delete_packs.size() == 1);  // there is work, which the plan only describes
  CHECK(plan.temp_files.size() == 1);
  CHECK(listing(dir.path()) == files_before);
  CHECK(catalog_dump(dir.path()) == catalog_before);
}

TEST_CASE("in-flight protection: unknown packs and temp files younger than the grace period survive gc") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model m;
  m.set("x", kChunkFloats, 1);
  save(m.state(), store, "a", so);
  const auto committed = files_in(dir.path(), "packs");
  // A save that has made its pack durable but not committed yet.
  Model next = m;
  next.set("x", kChunkFloats, 2);
  const SavedPart in_flight = write_part(next.state(), store, so);
  REQUIRE(in_flight.stats.packs == 1);
  const std::string unknown = only_new(files_in(dir.path(), "packs"), committed);
  std::ofstream(dir / "tmp/123-4-5.partial") << std::string(1000, 'x');

  const GcPlan young = plan_gc(store);  // default grace: 1 hour
  CHECK(young.unknown_packs.empty());
  CHECK(young.temp_files.empty());
  CHECK(young.young_unknown_files == 2);
  run_gc(store, young);
  CHECK(fs::exists(dir / "packs/" + unknown));
  CHECK(fs::exists(dir / "tmp/123-4-5.partial"));

  // The save commits within the grace period: its pack is still there.
  commit_parts(store, "b", {in_flight.manifest}, 1, so);
  CHECK(next.loads_exactly(store, "b"));

  // Another unknown pack, this time older than the grace period.
  Model late = m;
  late.set("x", kChunkFloats, 3);
  const auto before_stale = files_in(dir.path(), "packs");
  const SavedPart stale = write_part(late.state(), store, so);
  const std::string stale_pack = only_new(files_in(dir.path(), "packs"), before_stale);
  make_old(dir / "packs/" + stale_pack);
  make_old(dir / "tmp/123-4-5.partial");
  const GcPlan old = plan_gc(store);
  CHECK(file_names(old.unknown_packs) == std::vector<std::string>{stale_pack});
  CHECK(file_names(old.temp_files) == std::vector<std::string>{"123-4-5.partial"});
  const GcResult r = run_gc(store, old);
  CHECK(r.removed_files == std::vector<std::string>{"packs/" + stale_pack, "tmp/123-4-5.partial"});
  CHECK(!fs::exists(dir / "packs/" + stale_pack));
  CHECK(files_in(dir.path(), "tmp").empty());
  CHECK(files_in(dir.path(), "packs").size() == committed.size() + 1);  // a's and b's

  // That save commits too late: its pack is gone, and the commit fails cleanly.
  const std::string catalog_before = catalog_dump(dir.path());
  const std::string err = error_of([&] { commit_parts(store, "late", {stale.manifest}, 1, so); });
  CHECK(has(err, "pack '" + stale_pack + "'"));
  CHECK(has(err, "is gone"));
  CHECK(catalog_dump(dir.path()) == catalog_before);
  CHECK(names_of(store) == std::vector<std::string>{"a", "b"});
  CHECK(m.loads_exactly(store, "a"));
}

TEST_CASE("race: a save that deduplicated against a chunk gc dropped fails its commit cleanly") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model a;
  a.set("x", kChunkFloats, 1);
  save(a.state(), store, "a", so);
  // The save's first half: x is found committed (dedup), n is written.
  Model b = a;
  b.set("n", kChunkFloats, 2);
  const auto before = files_in(dir.path(), "packs");
  const SavedPart m = write_part(b.state(), store, so);
  REQUIRE(m.stats.chunks_written == 1);
  const std::string pack = only_new(files_in(dir.path(), "packs"), before);
  const std::vector<float>& xs = a.tensors.at("x");
  const pack::ChunkId x = pack::chunk_id_of(xs.data(), xs.size() * sizeof(float));  // one raw chunk: its bytes
  // Meanwhile a is removed and gc drops x (and a's pack).
  remove_checkpoints(store, {"a"});
  const GcResult r = run_gc(store, plan_gc(store));
  CHECK(r.chunks_dropped == 1);
  CHECK(r.deleted_packs.size() == 1);
  CHECK(fs::exists(dir / "packs/" + pack));  // young: kept

  const std::string catalog_before = catalog_dump(dir.path());
  std::string err;
  try {
    commit_parts(store, "b", {m.manifest}, 1, so);
  } catch (const StoreError& e) {
    err = e.what();
  }
  CHECK(has(err, "commit of 'b' failed"));
  CHECK(has(err, "tensor 'x': chunk " + x.hex() + " is neither in this save's packs nor committed"));
  CHECK(catalog_dump(dir.path()) == catalog_before);
  CHECK(store.checkpoints().empty());
  // Saving again works.
  save(b.state(), store, "b", so);
  CHECK(b.loads_exactly(store, "b"));
}

TEST_CASE("gc re-checks its plan under the write lock: what a later commit references stays") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model a;
  a.set("x", kChunkFloats, 1);
  a.set("y", 4 * kChunkFloats, 2);

  SUBCASE("a pack planned for deletion") {
    save(a.state(), store, "a", so);
    const auto packs = files_in(dir.path(), "packs");
    remove_checkpoints(store, {"a"});
    const GcPlan plan = plan_gc(store);
    REQUIRE(plan.delete_packs.size() == 1);
    save(a.state(), store, "b", so);  // deduplicates against the orphan rows
    const GcResult r = run_gc(store, plan);
    CHECK(r.deleted_packs.empty());
    CHECK(r.chunks_dropped == 0);
    REQUIRE(r.skipped.size() == 1);
    CHECK(has(r.skipped[0], "not deleted"));
    CHECK(files_in(dir.path(), "packs") == packs);
    CHECK(a.loads_exactly(store, "b"));
    CHECK(verify(store).ok());
  }

  SUBCASE("a pack planned for rewriting") {
    save(a.state(), store, "a", so);
    Model c = a;
    c.tensors.erase("y");
    save(c.state(), store, "c", so);  // x only: a's pack is 25% live once a goes
    const auto packs = files_in(dir.path(), "packs");
    remove_checkpoints(store, {"a"});
    const GcPlan plan = plan_gc(store);
    REQUIRE(plan.rewrite_packs.size() == 1);
    save(a.state(), store, "b", so);  // y is live again before gc starts copying
    const GcResult r = run_gc(store, plan);
    CHECK(r.rewritten_packs.empty());
    CHECK(r.new_packs.empty());
    REQUIRE(r.skipped.size() == 1);
    CHECK(has(r.skipped[0], "not rewritten: checkpoints committed since planning made it 99% live"));
    CHECK(files_in(dir.path(), "packs") == packs);
    CHECK(files_in(dir.path(), "tmp").empty());
    CHECK(a.loads_exactly(store, "b"));
    CHECK(c.loads_exactly(store, "c"));
    CHECK(verify(store).ok());
  }

  SUBCASE("a pack whose rewrite is overtaken by a commit while gc copies") {
    save(a.state(), store, "a", so);
    Model c = a;
    c.tensors.erase("y");
    save(c.state(), store, "c", so);
    const auto packs = files_in(dir.path(), "packs");
    remove_checkpoints(store, {"a"});
    const GcPlan plan = plan_gc(store);
    REQUIRE(plan.rewrite_packs.size() == 1);
    bool saved = false;
    engine::set_history_step_hook([&](std::string_view step) {
      if (step != "gc: copied chunk" || saved) return;
      saved = true;
      save(a.state(), store, "b", so);  // y is live again, but gc copied only x
    });
    const GcResult r = run_gc(store, plan);
    engine::set_history_step_hook(nullptr);
    REQUIRE(saved);
    CHECK(r.rewritten_packs.empty());
    CHECK(r.chunks_moved == 0);
    CHECK(r.new_packs.empty());  // the copy of x was dropped again
    REQUIRE(r.skipped.size() == 1);
    CHECK(has(r.skipped[0], "not rewritten: a checkpoint committed since planning references more of it"));
    CHECK(files_in(dir.path(), "packs") == packs);
    CHECK(files_in(dir.path(), "tmp").empty());
    CHECK(a.loads_exactly(store, "b"));
    CHECK(c.loads_exactly(store, "c"));
    CHECK(verify(store).ok());
  }
}

TEST_CASE("a damaged live chunk is not copied: its pack is left as it is") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model a;
  a.set("x", kChunkFloats, 1);
  a.set("y", 4 * kChunkFloats, 2);
  save(a.state(), store, "a", so);
  Model c = a;
  c.tensors.erase("y");
  save(c.state(), store, "c", so);
  remove_checkpoints(store, {"a"});
  const std::string pack = *files_in(dir.path(), "packs").begin();
  auto& cat = StoreAccess::impl(store).catalog;
  const auto x = cat.locate(cat.tensor(cat.find_checkpoint("c")->id, "x")->pieces.at(0).chunk);
  {
    std::fstream f(dir / "packs/" + pack, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(x->entry.offset + 10));
    f.put('\x7f');
  }
  const GcResult r = run_gc(store, plan_gc(store));
  REQUIRE(r.skipped.size() == 1);
  CHECK(has(r.skipped[0], "pack " + pack + " not rewritten"));
  CHECK(has(r.skipped[0], "checksum mismatch"));
  CHECK(r.rewritten_packs.empty());
  CHECK(fs::exists(dir / "packs/" + pack));
  CHECK(cat.locate(x->entry.id)->pack == pack);
  CHECK(verify(store).damaged.size() == 1);  // still reported where it is
}

TEST_CASE("keep_last keeps the newest checkpoints, never the one just saved, and deletes the packs left dead") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  SaveOptions so;
  so.threads = 1;  // one pack per save
  so.keep_last = 3;
  Model m;
  // Bytes of the packs a save made disappear.
  auto sizes = [&] {
    std::map<std::string, uint64_t> out;
    for (const auto& f : files_in(dir.path(), "packs")) out[f] = fs::file_size(dir / ("packs/" + f));
    return out;
  };
  auto vanished = [&](const std::map<std::string, uint64_t>& before) {
    uint64_t n = 0;
    const auto now = sizes();
    for (const auto& [f, size] : before) n += now.count(f) ? 0 : size;
    return n;
  };
  for (int i = 0; i < 5; ++i) {
    m.set("w", 4096, static_cast<uint32_t>(i));
    const auto before = sizes();
    const SaveResult r = save(m.state(), store, "s" + std::to_string(i), so);
    CHECK(r.removed == (i < 3 ? std::vector<std::string>{} : std::vector<std::string>{"s" + std::to_string(i - 3)}));
    CHECK(r.freed_bytes == vanished(before));  // the removed checkpoint's pack, every byte dead
    CHECK((i < 3 || r.freed_bytes > 0));
    CHECK(files_in(dir.path(), "packs").size() == static_cast<size_t>(std::min(i + 1, 3)));
  }
  CHECK(names_of(store) == std::vector<std::string>{"s2", "s3", "s4"});
  CHECK(m.loads_exactly(store, "s4"));
  so.keep_last = 1;
  m.set("w", 4096, 99);
  const auto before = sizes();
  const SaveResult last = save(m.state(), store, "last", so);
  CHECK(last.removed == std::vector<std::string>{"s2", "s3", "s4"});
  CHECK(last.freed_bytes == vanished(before));
  CHECK(names_of(store) == std::vector<std::string>{"last"});
  CHECK(m.loads_exactly(store, "last"));
  CHECK(files_in(dir.path(), "packs").size() == 1);
  CHECK(plan_gc(store).empty());  // nothing left for gc
  CHECK(verify(store).ok());
}

TEST_CASE("keep_last leaves packs to gc while another save may be writing, and frees them at the next chance") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  SaveOptions so;
  so.threads = 1;
  so.keep_last = 1;
  Model m;
  m.set("w", 4096, 1);
  save(m.state(), store, "a", so);
  // A pack the catalog does not know, just written: another save in flight,
  // which may have found a chunk of "a" already stored and will reference it.
  const std::string in_flight = dir / "packs/0123456789abcdef0123456789abcdef.pack";
  std::ofstream(in_flight) << "not yet committed";
  m.set("w", 4096, 2);
  const SaveResult b = save(m.state(), store, "b", so);
  CHECK(b.removed == std::vector<std::string>{"a"});
  CHECK(b.freed_bytes == 0);
  CHECK(files_in(dir.path(), "packs").size() == 3);  // a's, b's and the one in flight
  fs::remove(in_flight);
  m.set("w", 4096, 3);
  const SaveResult c = save(m.state(), store, "c", so);
  CHECK(c.removed == std::vector<std::string>{"b"});
  CHECK(c.freed_bytes > 0);
  CHECK(files_in(dir.path(), "packs").size() == 1);  // a's and b's both went
  CHECK(m.loads_exactly(store, "c"));
}

TEST_CASE("rm then gc with default options frees a removed checkpoint's bytes from packs it shared") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  Model m;
  m.set("frozen", 3 * kChunkFloats, 1);
  m.set("trained", kChunkFloats, 2);
  save(m.state(), store, "a", raw_chunks(64 << 10));  // one pack: 3 frozen chunks + 1 trained
  m.set("trained", kChunkFloats, 3);
  save(m.state(), store, "b", raw_chunks(64 << 10));  // only the new trained chunk
  remove_checkpoints(store, {"a"});
  auto pack_bytes = [&] {
    uint64_t n = 0;
    for (const auto& f : files_in(dir.path(), "packs")) n += fs::file_size(dir / ("packs/" + f));
    return n;
  };
  const uint64_t before = pack_bytes();
  const GcPlan plan = plan_gc(store);  // a's pack is a quarter dead: rewritten by default
  CHECK(plan.rewrite_packs.size() == 1);
  const GcResult r = run_gc(store, plan);
  CHECK(r.bytes_freed > 0);
  CHECK(pack_bytes() < before);
  CHECK(m.loads_exactly(store, "b"));
  CHECK(verify(store).ok());
}

TEST_CASE("keep_last in a distributed save: the coordinator prunes after its commit") {
  TempDir dir("hist");
  std::vector<float> w(64);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  auto save_all = [&](const std::string& name) {
    auto planes = in_process_control_planes(2);
    std::vector<std::string> errors(2);
    std::vector<SaveResult> results(2);
    std::vector<std::thread> ranks;
    for (int64_t r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        try {
          StateDict sd;
          sd.add_tensor("w", TensorView::contiguous("float32", 4, w.data() + r * 32, {32}).as_shard({64}, {r * 32}));
          SaveOptions so;
          so.keep_last = 2;
          so.plane = planes[r].get();
          Store store = Store::open(dir.path());
          results[r] = save(sd, store, name, so);
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    for (auto& t : ranks) t.join();
    CHECK(errors == std::vector<std::string>{"", ""});
    return results[0].removed;
  };
  CHECK(save_all("d0").empty());
  CHECK(save_all("d1").empty());
  CHECK(save_all("d2") == std::vector<std::string>{"d0"});
  CHECK(names_of(Store::open_read_only(dir.path())) == std::vector<std::string>{"d1", "d2"});
}

TEST_CASE("ls: the bytes each checkpoint added to the store") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model m;
  m.set("x", kChunkFloats, 1);
  m.set("y", kChunkFloats, 2);
  save(m.state(), store, "a", so);
  save(m.state(), store, "b", so);  // the same state: adds nothing
  m.set("y", kChunkFloats, 3);
  save(m.state(), store, "c", so);  // one chunk new
  auto cs = store.checkpoints();
  REQUIRE(cs.size() == 3);
  CHECK(cs[0].added_bytes == 2 * (64 << 10));
  CHECK(cs[0].stored_bytes == 2 * (64 << 10));
  CHECK(cs[1].added_bytes == 0);
  CHECK(cs[1].stored_bytes == 2 * (64 << 10));
  CHECK(cs[2].added_bytes == 64 << 10);
  CHECK(store.checkpoint("c").added_bytes == 64 << 10);
  // What its commit added: recorded then, not recomputed when earlier
  // checkpoints go (listing never walks references).
  remove_checkpoints(store, {"a"});
  CHECK(store.checkpoint("b").added_bytes == 0);
  CHECK(store.checkpoint("b").stored_bytes == 2 * (64 << 10));
}

TEST_CASE("show: tensors shared with the previous checkpoint") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  Model m;
  m.set("x", kChunkFloats, 1);
  m.set("y", 4 * kChunkFloats, 2);
  StateDict sd = m.state();
  sd.add_value("step", int64_t{1});
  save(sd, store, "a", raw_chunks(64 << 10));
  m.tensors["y"][3 * kChunkFloats] += 1.0f;  // one chunk of four changes
  sd = m.state();
  sd.add_value("step", int64_t{1});
  save(sd, store, "b", raw_chunks(64 << 10));
  save(sd, store, "c", raw_chunks(32 << 10));  // same values, other chunk grid
  save(sd, store, "d", raw_chunks(32 << 10));  // same values, same grid as c

  auto shared = [&](const std::string& ckpt) {
    std::map<std::string, bool> out;
    for (const EntryInfo& e : describe(store, ckpt)) out[e.name] = e.shared_with_previous;
    return out;
  };
  CHECK(shared("a") == std::map<std::string, bool>{{"step", false}, {"x", false}, {"y", false}});
  CHECK(shared("b") == std::map<std::string, bool>{{"step", false}, {"x", true}, {"y", false}});
  CHECK(shared("c") == std::map<std::string, bool>{{"step", false}, {"x", false}, {"y", false}});
  CHECK(shared("d") == std::map<std::string, bool>{{"step", false}, {"x", true}, {"y", true}});
  remove_checkpoints(store, {"c"});  // now b, on the other grid, is d's previous
  CHECK(shared("d") == std::map<std::string, bool>{{"step", false}, {"x", false}, {"y", false}});
}

// --- the catalog's layouts (schema 3) -------------------------------------

namespace {

int64_t rows(const Store& store, const std::string& table) {
  auto st = StoreAccess::impl(store).catalog.db().prepare("SELECT count(*) FROM " + table);
  st.step();
  return st.column_int(0);
}

// Chunks some layout references (what gc keeps).
int64_t live_chunks(const Store& store) {
  return static_cast<int64_t>(catalog::live_chunk_ids(StoreAccess::impl(store).catalog).size());
}

}  // namespace

TEST_CASE("a checkpoint adds catalog rows only for the tensors that changed") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model m;
  for (int i = 0; i < 20; ++i) m.set("t" + std::to_string(i), 2 * kChunkFloats, i);
  save(m.state(), store, "s0", so);
  CHECK(rows(store, "layouts") == 20);
  CHECK(rows(store, "tensors") == 20);
  CHECK(live_chunks(store) == 40);
  save(m.state(), store, "s1", so);  // unchanged: shares every row
  CHECK(rows(store, "layouts") == 20);
  CHECK(rows(store, "tensors") == 20);
  m.set("t3", 2 * kChunkFloats, 100);
  save(m.state(), store, "s2", so);  // one tensor changed: one layout, one tensors row
  CHECK(rows(store, "layouts") == 21);
  CHECK(rows(store, "tensors") == 21);
  CHECK(live_chunks(store) == 42);
  CHECK(rows(store, "chunks") == 42);
  CHECK(store.checkpoint("s2").tensors == 20);
  CHECK(store.checkpoint("s2").added_bytes == 2 * (64 << 10));
  // rm prunes what no remaining checkpoint holds; the chunks wait for gc.
  remove_checkpoints(store, {"s0", "s1"});
  CHECK(rows(store, "layouts") == 20);
  CHECK(rows(store, "tensors") == 20);
  CHECK(live_chunks(store) == 40);
  CHECK(rows(store, "chunks") == 42);
  CHECK(plan_gc(store).orphan_chunks == 2);
  CHECK(m.loads_exactly(store, "s2"));  // what is left still loads as saved
}

TEST_CASE("many tensors sharing few layouts in one commit: one layouts row each") {
  // 150 tensors with 3 distinct contents: tensors of equal contents share a
  // layout, also when the commit inserts that layout itself.
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  const SaveOptions so = raw_chunks(64 << 10);
  Model m;
  for (int i = 0; i < 150; ++i) m.set("t" + std::to_string(1000 + i), kChunkFloats, i % 3);
  save(m.state(), store, "a", so);
  CHECK(rows(store, "layouts") == 3);
  CHECK(rows(store, "tensors") == 150);
  CHECK(rows(store, "chunks") == 3);
  CHECK(store.checkpoint("a").tensors == 150);
  CHECK(store.checkpoint("a").stored_bytes == 3 * (64 << 10));  // each distinct layout once
  save(m.state(), store, "b", so);  // unchanged: no new rows
  CHECK(rows(store, "layouts") == 3);
  CHECK(rows(store, "tensors") == 150);
  remove_checkpoints(store, {"a", "b"});
  CHECK(rows(store, "layouts") == 0);
  m.set("t1149", kChunkFloats, 7);
  save(m.state(), store, "c", so);  // ids after a removal stay distinct
  CHECK(rows(store, "layouts") == 4);
  CHECK(rows(store, "tensors") == 150);
  CHECK(m.loads_exactly(store, "c"));
  CHECK(verify(store).ok());
}

TEST_CASE("overwrite prunes the replaced checkpoint's rows in the same transaction") {
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  SaveOptions so = raw_chunks(64 << 10);
  Model m;
  m.set("a", kChunkFloats, 1);
  m.set("b", kChunkFloats, 2);
  save(m.state(), store, "x", so);
  m.set("b", kChunkFloats, 3);
  so.overwrite = true;
  save(m.state(), store, "x", so);
  CHECK(rows(store, "layouts") == 2);  // b's old layout went with the old "x"
  CHECK(rows(store, "tensors") == 2);
  CHECK(store.checkpoint("x").tensors == 2);
}

TEST_CASE("a schema-1 store (tessera 0.2.0) migrates: same checkpoints, same bytes, gc and verify work") {
  TempDir dir("hist");
  fs::copy(fs::path(TESSERA_TEST_DATA) / "store-v1", dir.path(), fs::copy_options::recursive);
  const std::string m = error_of([&] { Store::open_read_only(dir.path()); });
  CHECK(has(m, "needs migrating"));
  {
    Store store = Store::open(dir.path());  // the ladder runs: 1 -> latest
    CHECK(StoreAccess::impl(store).catalog.schema_version() == catalog::Catalog::latest_schema_version());
  }
  Store store = Store::open_read_only(dir.path());
  CHECK(names_of(store) == std::vector<std::string>{"a", "b", "d"});
  for (const auto& c : store.checkpoints()) {
    CHECK(c.tensors == 3);
    CHECK(c.values == 1);
    CHECK(c.logical_bytes == 64 * 48 * 4 + 30 * 8 + 7 * 4);
  }
  CHECK(store.checkpoint("a").added_bytes > 0);
  CHECK(store.checkpoint("b").added_bytes < store.checkpoint("a").added_bytes);  // only w1 changed
  // Every tensor loads as make_store_v1.py saved it.
  for (const auto& [name, step] : std::vector<std::pair<std::string, int>>{{"a", 0}, {"b", 1}, {"d", 1}}) {
    std::vector<float> w1(64 * 48), b(7);
    std::vector<int64_t> w2(30);
    StateDict sd;
    sd.add_tensor("w1", TensorView::contiguous("float32", 4, w1.data(), {64, 48}));
    sd.add_tensor("w2", TensorView::contiguous("int64", 8, w2.data(), {30}));
    sd.add_tensor("b", TensorView::contiguous("float32", 4, b.data(), {7}));
    sd.add_value("step", int64_t{-1});
    load(sd, store, name);
    for (int i = 0; i < 64 * 48; ++i) REQUIRE(w1[i] == static_cast<float>(i + step));
    for (int i = 0; i < 30; ++i) REQUIRE(w2[i] == i * (name == "d" ? 2 : 1));
    for (float x : b) REQUIRE(x == 0.5f);
    CHECK(std::get<int64_t>(sd.value("step")) == (name == "d" ? 3 : step));
  }
  auto shared = [&](const std::string& ckpt, const std::string& tensor) {
    for (const auto& e : describe(store, ckpt))
      if (e.name == tensor) return e.shared_with_previous;
    FAIL("no tensor " << tensor);
    return false;
  };
  CHECK(shared("b", "w2"));
  CHECK_FALSE(shared("b", "w1"));
  CHECK(shared("d", "w1"));
  CHECK(verify(store).damaged.empty());
  Store rw = Store::open(dir.path());
  const GcPlan plan = plan_gc(rw);
  CHECK(plan.orphan_chunks > 0);  // the removed checkpoint "c"
  run_gc(rw, plan);
  CHECK(plan_gc(rw).orphan_chunks == 0);
  CHECK(verify(rw).damaged.empty());
}

namespace {

// Chunk ids (hex) of `store`'s catalog matching `where` (on chunks c), read
// with plain SQLite: usable on a catalog this build would migrate.
std::set<std::string> chunk_hexes(const std::string& store, const std::string& where) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((store + "/catalog.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  const std::string sql = "SELECT lower(hex(chunk_id)) FROM chunks c WHERE " + where;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::set<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) out.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

std::set<std::string> hexes(const std::vector<pack::ChunkId>& ids) {
  std::set<std::string> out;
  for (const pack::ChunkId& id : ids) out.insert(id.hex());
  return out;
}

// The chunk ids the store's checkpoints reference, as the load path reads them.
std::set<std::string> referenced_chunks(const Store& store) {
  std::set<std::string> out;
  auto& cat = StoreAccess::impl(store).catalog;
  for (const auto& c : cat.list_checkpoints())
    for (const pack::ChunkId& id : cat.chunk_ids(c.id)) out.insert(id.hex());
  return out;
}

// Loads a checkpoint of tests/data/store-v4 and checks it bit for bit against
// what make_store_v4.cc saved (see its header).
bool v4_loads_exactly(const Store& store, const std::string& name) {
  std::vector<float> w1(64 * 48, -1), z1(1024, -1), z2(2048, -1), s(16 * 64, -1), ones(2048, -1);
  std::vector<int64_t> w2(30, -1);
  StateDict sd;
  const bool has_w1 = name != "c", has_w2 = name != "d";
  if (has_w1) sd.add_tensor("w1", TensorView::contiguous("float32", 4, w1.data(), {64, 48}));
  if (has_w2) sd.add_tensor("w2", TensorView::contiguous("int64", 8, w2.data(), {30}));
  if (name == "a") sd.add_tensor("z1", TensorView::contiguous("float32", 4, z1.data(), {1024}));
  if (name == "a" || name == "b") sd.add_tensor("z2", TensorView::contiguous("float32", 4, z2.data(), {2048}));
  if (name == "c") sd.add_tensor("s", TensorView::contiguous("float32", 4, s.data(), {16, 64}));
  if (name == "d") sd.add_tensor("ones", TensorView::contiguous("float32", 4, ones.data(), {2048}));
  sd.add_value("step", int64_t{-1});
  load(sd, store, name);
  const float add = name == "a" ? 0 : name == "b" ? 1 : 5;
  bool ok = std::get<int64_t>(sd.value("step")) == (name == "a" ? 0 : name == "b" ? 1 : name == "c" ? 2 : 5);
  for (size_t i = 0; has_w1 && i < w1.size(); ++i) ok = ok && w1[i] == static_cast<float>(i) + add;
  for (size_t i = 0; has_w2 && i < w2.size(); ++i) ok = ok && w2[i] == static_cast<int64_t>(i);
  for (size_t i = 0; name == "c" && i < s.size(); ++i) ok = ok && s[i] == static_cast<float>(i) / 2 + 100;
  if (name == "a") ok = ok && std::all_of(z1.begin(), z1.end(), [](float x) { return x == 0; });
  if (name == "a" || name == "b") ok = ok && std::all_of(z2.begin(), z2.end(), [](float x) { return x == 0; });
  if (name == "d") ok = ok && std::all_of(ones.begin(), ones.end(), [](float x) { return x == 1; });
  return ok;
}

}  // namespace

TEST_CASE("a schema-4 store (tessera 0.3.0) migrates: layout_chunks and chunks_by_pack go, loads are bit-exact, gc keeps exactly the live chunks") {
  TempDir dir("hist");
  fs::copy(fs::path(TESSERA_TEST_DATA) / "store-v4", dir.path(), fs::copy_options::recursive);
  // Schema 4's own answer to "which chunks are live", read before migrating.
  const std::string live_v4 = "EXISTS (SELECT 1 FROM layout_chunks lc WHERE lc.chunk_id = c.chunk_id)";
  const std::set<std::string> live = chunk_hexes(dir.path(), live_v4);
  const std::set<std::string> orphans = chunk_hexes(dir.path(), "NOT " + live_v4);
  REQUIRE(live.size() == 17);
  REQUIRE(orphans.size() == 8);  // d's first w1 and e's w1 (make_store_v4.cc)
  CHECK(has(error_of([&] { Store::open_read_only(dir.path()); }), "needs migrating"));
  {
    Store store = Store::open(dir.path());  // the ladder runs: 4 -> latest
    auto& db = StoreAccess::impl(store).catalog.db();
    CHECK(StoreAccess::impl(store).catalog.schema_version() == catalog::Catalog::latest_schema_version());
    auto count = [&](const std::string& sql) {
      auto st = db.prepare(sql);
      st.step();
      return st.column_int(0);
    };
    CHECK(count("SELECT count(*) FROM sqlite_schema WHERE name IN ('layout_chunks', 'chunks_by_pack', 'chunks_v5')") == 0);
    CHECK(count("SELECT count(*) FROM pragma_foreign_key_list('chunks')") == 0);
    CHECK(count("SELECT count(*) FROM chunks") == 25);  // every row kept, as it was
    CHECK(hexes(catalog::live_chunk_ids(StoreAccess::impl(store).catalog)) == live);
    CHECK(hexes(catalog::chunk_usage(StoreAccess::impl(store).catalog).orphans) == orphans);
  }
  {
    Store store = Store::open_read_only(dir.path());
    CHECK(names_of(store) == std::vector<std::string>{"a", "b", "c", "d"});
    for (const char* name : {"a", "b", "c", "d"}) CHECK_MESSAGE(v4_loads_exactly(store, name), name);
    CHECK(referenced_chunks(store) == live);
    CHECK(verify(store).ok());
  }
  Store rw = Store::open(dir.path());
  const GcPlan plan = plan_gc(rw);
  CHECK(plan.orphan_chunks == 8);
  CHECK(plan.delete_packs.size() == 2);  // d's first save and e
  CHECK(plan.rewrite_packs.empty());
  const GcResult r = run_gc(rw, plan);
  CHECK(r.chunks_dropped == 8);
  CHECK(r.deleted_packs.size() == 2);
  CHECK(chunk_hexes(dir.path(), "1") == live);  // exactly the live chunks are left
  for (const char* name : {"a", "b", "c", "d"}) CHECK_MESSAGE(v4_loads_exactly(rw, name), name);
  CHECK(verify(rw).ok());
  CHECK(plan_gc(rw).empty());

  // Removing "a" leaves its pack mostly dead: w2 and the zero chunk stay
  // live (b, c and b's z2 hold them) and move; a's w1 and z1's layout go.
  remove_checkpoints(rw, {"a"});
  const GcPlan plan2 = plan_gc(rw);
  REQUIRE(plan2.rewrite_packs.size() == 1);
  CHECK(plan2.rewrite_packs[0].live_chunks == 2);
  CHECK(plan2.orphan_chunks == 4);
  const GcResult r2 = run_gc(rw, plan2);
  CHECK(r2.chunks_moved == 2);
  CHECK(r2.chunks_dropped == 4);
  CHECK(r2.skipped.empty());
  CHECK(chunk_hexes(dir.path(), "1") == referenced_chunks(rw));
  for (const char* name : {"b", "c", "d"}) CHECK_MESSAGE(v4_loads_exactly(rw, name), name);
  CHECK(verify(rw).ok());
  std::set<std::string> catalog_packs;
  for (const auto& p : catalog::pack_usage(StoreAccess::impl(rw).catalog)) catalog_packs.insert(p.name);
  CHECK(files_in(dir.path(), "packs") == catalog_packs);
}

TEST_CASE("gc keeps exactly the chunks that remaining checkpoints reference, through saves, overwrites and removals") {
  // A random history over shared, repeated and changing chunks; after every
  // step gc runs (rewriting any pack with a dead byte) and the catalog must
  // hold exactly the chunks some checkpoint references, each checkpoint
  // loading bit-exact.
  TempDir dir("hist");
  Store store = Store::open(dir.path());
  std::mt19937 rng(10);
  std::map<std::string, Model> saved;
  GcOptions all;
  all.grace = std::chrono::seconds(0);
  all.rewrite_below = 1.0;
  for (int step = 0; step < 40; ++step) {
    const int what = static_cast<int>(rng() % 10);
    if (what < 6 || saved.empty()) {
      Model m;
      for (int t = 0; t < 4; ++t) {
        const uint32_t seed = rng() % 3;  // few distinct contents: much sharing
        const size_t chunks = 1 + rng() % 3;
        m.set("t" + std::to_string(t), chunks * kChunkFloats, seed);
      }
      m.tensors["zeros"].assign((1 + rng() % 3) * kChunkFloats, 0.0f);  // one chunk repeated
      SaveOptions so = raw_chunks(64 << 10);
      std::string name = "s" + std::to_string(step);
      if (what == 5 && !saved.empty()) {
        name = saved.begin()->first;  // overwrite
        so.overwrite = true;
      }
      save(m.state(), store, name, so);
      saved[name] = m;
    } else {
      auto it = saved.begin();
      std::advance(it, rng() % saved.size());
      remove_checkpoints(store, {it->first});
      saved.erase(it);
    }
    run_gc(store, plan_gc(store, all), all);
    REQUIRE(chunk_hexes(dir.path(), "1") == referenced_chunks(store));
    for (const auto& [name, m] : saved) REQUIRE(m.loads_exactly(store, name));
  }
  CHECK(verify(store).ok());
}

TEST_CASE("a damaged layout that no longer covers a tensor fails the load naming it, instead of leaving bytes unset") {
  TempDir dir("hist");
  Model m;
  std::string expect;  // in the error
  m.set("w", 2 * kChunkFloats, 1);
  {
    Store store = Store::open(dir.path());
    save(m.state(), store, "c", raw_chunks(64 << 10));
    auto t = StoreAccess::impl(store).catalog.tensor(StoreAccess::impl(store).catalog.find_checkpoint("c")->id, "w");
    REQUIRE(t);
    REQUIRE(t->pieces.size() == 2);
    t->pieces.pop_back();  // as a flipped byte in the piece count would leave it
    const std::string blob = catalog::encode_pieces(t->pieces, 1);
    auto& db = StoreAccess::impl(store).catalog.db();
    SUBCASE("the layout's digest catches it") {
      db.prepare("UPDATE layouts SET pieces = ?1").bind_blob(1, blob.data(), blob.size()).run();
      expect = "digest";
    }
    SUBCASE("with digest and row checksum rewritten to match (a writer's bug), the coverage check does") {
      const std::string digest = catalog::chunk_blob(catalog::layout_digest(t->dtype, t->elem_size, t->shape, blob));
      db.prepare("UPDATE layouts SET pieces = ?1, digest = ?2")
          .bind_blob(1, blob.data(), blob.size())
          .bind_blob(2, digest.data(), digest.size())
          .run();
      db.prepare("UPDATE tensors SET row_sum = ?1 WHERE tensor_id = ?2")
          .bind(1, catalog::tensor_row_sum(t->id, t->name, digest))
          .bind(2, t->id)
          .run();
      expect = "cover";
    }
  }
  const std::string msg = error_of([&] { m.loads_exactly(Store::open_read_only(dir.path()), "c"); });
  CHECK(has(msg, "tensor 'w'"));
  CHECK(has(msg, expect));
}

TEST_CASE("gc never deletes through a symbolic link; a FIFO in a pack's place fails verify instead of blocking it") {
  TempDir dir("hist"), outside("hist-out");
  Model m;
  m.set("w", kChunkFloats, 1);
  {
    Store store = Store::open(dir.path());
    save(m.state(), store, "c", raw_chunks(64 << 10));
  }
  std::ofstream(outside / "precious.txt") << "not tessera's";
  // A link inside tmp/ to an outside file: never counted, never followed.
  fs::create_symlink(outside / "precious.txt", fs::path(dir.path()) / "tmp" / "link-to-precious");
  GcOptions now;
  now.grace = std::chrono::seconds(0);
  {
    Store store = Store::open(dir.path());
    run_gc(store, plan_gc(store, now), now);
  }
  CHECK(fs::exists(outside / "precious.txt"));
  // tmp/ itself a link to another folder: gc refuses, naming it.
  fs::remove_all(fs::path(dir.path()) / "tmp");
  fs::create_directory_symlink(outside.path(), fs::path(dir.path()) / "tmp");
  {
    Store store = Store::open(dir.path());
    const std::string msg = error_of([&] { plan_gc(store, now); });
    CHECK(has(msg, "symbolic link"));
    CHECK(has(msg, "tmp"));
  }
  CHECK(fs::exists(outside / "precious.txt"));
  fs::remove(fs::path(dir.path()) / "tmp");
  fs::create_directory(fs::path(dir.path()) / "tmp");
  // A FIFO where a pack should be: verify reports it (it used to block forever).
  Store store = Store::open(dir.path());
  const auto packs = files_in(dir.path(), "packs");
  REQUIRE(packs.size() == 1);
  const fs::path pack = fs::path(dir.path()) / "packs" / *packs.begin();
  fs::remove(pack);
  REQUIRE(mkfifo(pack.c_str(), 0644) == 0);
  const VerifyReport report = verify(store);
  REQUIRE(report.damaged.size() == 1);
  CHECK(has(report.damaged[0].problem, "not a regular file"));
}

TEST_CASE("gc on a nearly full disk still deletes dead packs when it cannot write the copies it wanted") {
  TempDir dir("hist");
  const SaveOptions so = raw_chunks(64 << 10);
  Model keep, dead;
  keep.set("x", 8 * kChunkFloats, 1);   // 512 KiB, live after the rm
  keep.set("y", 32 * kChunkFloats, 2);  // 2 MiB, dead after the rm
  dead.set("d", 32 * kChunkFloats, 3);  // 2 MiB pack, all dead after the rm
  Model only_x;
  only_x.tensors["x"] = keep.tensors["x"];
  std::string dead_pack;
  {
    Store store = Store::open(dir.path());
    save(dead.state(), store, "d", so);
    dead_pack = *files_in(dir.path(), "packs").begin();
    save(keep.state(), store, "xy", so);
    save(only_x.state(), store, "x", so);  // shares x's chunks with "xy": no new pack
    remove_checkpoints(store, {"d", "xy"});
  }
  const auto packs_before = files_in(dir.path(), "packs");
  REQUIRE(packs_before.size() == 2);
  // Files may not grow past 256 KiB: the catalog's writes fit, the 512 KiB
  // copy of x's chunks does not.
  const std::string report = tessera::test::with_file_size_limit(256 << 10, [&] {
    Store store = Store::open(dir.path());
    GcOptions o;
    const GcResult r = run_gc(store, plan_gc(store, o), o);
    std::string text = "deleted " + std::to_string(r.deleted_packs.size()) + "; skipped:";
    for (const auto& s : r.skipped) text += " " + s;
    return text;
  });
  INFO(report);
  CHECK_FALSE(has(report, "the child died"));
  CHECK(has(report, "deleted 1;"));
  CHECK(has(report, "not rewritten: writing the copy failed"));
  const auto packs_after = files_in(dir.path(), "packs");
  CHECK(packs_after.size() == 1);
  CHECK_FALSE(packs_after.count(dead_pack));
  CHECK(files_in(dir.path(), "tmp").empty());  // the copy in progress went
  Store store = Store::open_read_only(dir.path());
  CHECK(only_x.loads_exactly(store, "x"));
  CHECK(verify(store).damaged.empty());
}
