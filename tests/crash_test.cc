// Crash safety of the store's history: child processes run save, or rm then
// gc (deleting and rewriting packs), and are killed with SIGKILL at random
// points, many times. After every kill each remaining checkpoint loads
// bit-exact and verifies; a final gc leaves no unreferenced pack and an
// empty tmp/.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "catalog/maintenance.h"
#include "engine/maintenance/history_hooks.h"
#include "api/store_access.h"
#include "history_util.h"
#include "io/fault_injection_env.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::files_in;
using tessera::test::Model;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::has;
namespace fs = std::filesystem;

namespace {

constexpr int kTensors = 4, kChunksPerTensor = 4;
constexpr size_t kChunkFloats = 4096;  // 16 KiB chunks

// Versions share most chunks (history_util.h), so packs become partly dead
// as old checkpoints are removed.
Model version(int v) { return test::versioned_model(v, kTensors, kChunksPerTensor, kChunkFloats); }

int version_of(const std::string& checkpoint) { return std::stoi(checkpoint.substr(1)); }

// Two writer threads (each fills packs of its own) unless told otherwise.
SaveOptions save_options(size_t threads = 2) {
  SaveOptions o = test::raw_chunks(kChunkFloats * 4);
  o.pack_bytes = 40 << 10;  // two or three chunks a pack: kills land between renames
  o.threads = threads;
  return o;
}

GcOptions gc_options() {
  GcOptions o;
  o.grace = std::chrono::seconds(0);  // one process at a time: no save is in flight
  o.rewrite_below = 0.9;              // rewrite often
  o.pack_bytes = 40 << 10;
  return o;
}

// Every remaining checkpoint loads bit-exact, and every chunk verifies,
// through a read-only open as `tessera ls` or a resuming job would use (the
// journal of a transaction a kill interrupted is rolled back on open).
void check_store(const std::string& dir) {
  Store store = Store::open_read_only(dir);
  for (const auto& c : store.checkpoints()) {
    CAPTURE(c.name);
    CHECK(version(version_of(c.name)).loads_exactly(store, c.name));
  }
  const VerifyReport report = verify(store);
  CHECK(report.ok());
  for (const auto& d : report.damaged) MESSAGE(d.pack << ": " << d.problem);
}

enum class Op { kSave, kRemoveAndGc };

// Where a child kills itself: at the `occurrence`-th time rm or gc reaches `step`.
struct KillAt {
  std::string step;  // empty: never
  int occurrence = 1;
};

// Runs `op` in a child process that sleeps a little at every write and
// every step of rm and gc (so kills land inside them), kills it after
// `delay_us` (unless negative) or where `at` says, and returns its wait status.
int run_and_kill(const std::string& dir, Op op, const std::string& name, int v, int64_t delay_us, KillAt at = {}) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Every pack write sleeps a little (the catalog stays on SQLite's own VFS).
    auto slow = std::make_shared<io::FaultInjectionEnv>(posix_env());
    slow->let_sqlite_use_os_files(true);
    slow->set_rule([](const io::FaultInjectionEnv::Call& c) {
      if (c.op == io::FaultInjectionEnv::Op::kAppend) usleep(300);
      return 0;
    });
    auto seen = std::make_shared<int>(0);  // the hook is called through copies
    engine::set_history_step_hook([at, seen](std::string_view step) {
      if (step == at.step && ++*seen == at.occurrence) raise(SIGKILL);
      usleep(1500);
    });
    try {
      StoreOptions so;
      so.env = slow;
      Store store = Store::open(dir, so);
      if (op == Op::kSave) {
        save(version(v).state(), store, name, save_options());
      } else {
        remove_checkpoints(store, {name});
        const GcOptions o = gc_options();
        run_gc(store, plan_gc(store, o), o);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child failed: %s\n", e.what());
      _exit(3);
    }
    _exit(0);
  }
  if (delay_us >= 0) {
    usleep(static_cast<useconds_t>(delay_us));
    kill(pid, SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// A gc with no grace period reclaims every leftover of killed children: no
// pack the catalog does not name, no pack without a live chunk, no orphan
// chunk row, an empty tmp/; and every checkpoint still loads and verifies.
void check_final_gc_reclaims_leftovers(const std::string& dir) {
  {
    Store store = Store::open(dir);
    GcOptions o = gc_options();
    o.rewrite_below = 0;
    const GcPlan leftovers = plan_gc(store, o);
    MESSAGE("leftovers: " << leftovers.delete_packs.size() << " dead packs, " << leftovers.unknown_packs.size()
                          << " unknown packs, " << leftovers.temp_files.size() << " temp files, "
                          << leftovers.orphan_chunks << " orphan chunk rows");
    run_gc(store, leftovers, o);
    const GcPlan after = plan_gc(store, o);
    CHECK(after.empty());
    CHECK(after.young_unknown_files == 0);
    std::set<std::string> catalog_packs;
    for (const auto& p : catalog::pack_usage(StoreAccess::impl(store).catalog)) {
      catalog_packs.insert(p.name);
      CHECK(p.live_chunks > 0);
    }
    CHECK(files_in(dir, "packs") == catalog_packs);
    CHECK(files_in(dir, "tmp").empty());
    CHECK(!store.checkpoints().empty());
  }
  check_store(dir);
}

// A store with checkpoints v0..v(n-1); with one writer thread, the same
// packs every time.
void make_history(const std::string& dir, int n, size_t threads = 2) {
  Store store = Store::open(dir);
  for (int v = 0; v < n; ++v) save(version(v).state(), store, "v" + std::to_string(v), save_options(threads));
}

}  // namespace

TEST_CASE("crash safety: rm and gc killed at each of their steps leave every remaining checkpoint intact") {
  // Which steps an undisturbed rm + gc passes, and how often (in-process,
  // on a store like the ones the children get).
  std::map<std::string, int> seen;
  {
    TempDir trial("crash-trial");
    make_history(trial.path(), 4, 1);
    engine::set_history_step_hook([&](std::string_view step) { ++seen[std::string(step)]; });
    Store store = Store::open(trial.path());
    remove_checkpoints(store, {"v0"});
    const GcOptions o = gc_options();
    const GcResult r = run_gc(store, plan_gc(store, o), o);
    engine::set_history_step_hook(nullptr);
    CHECK(!r.rewritten_packs.empty());  // the run deletes and rewrites
    CHECK(!r.deleted_packs.empty());
  }
  for (const char* step : {"rm: before commit", "gc: copied chunk", "gc: new pack durable", "gc: before commit",
                           "gc: committed", "gc: deleting file"})
    CHECK_MESSAGE(seen.count(step), "never reached: " << step);
  // Kill at the first, a middle and the last time each step is reached.
  std::vector<KillAt> points;
  for (const auto& [step, count] : seen)
    for (int occurrence : std::set<int>{1, (count + 1) / 2, count}) points.push_back(KillAt{step, occurrence});
  for (const KillAt& at : points) {
    CAPTURE(at.step);
    CAPTURE(at.occurrence);
    TempDir dir("crash-step");
    make_history(dir.path(), 4, 1);
    const int status = run_and_kill(dir.path(), Op::kRemoveAndGc, "v0", 0, -1, at);
    INFO("exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1));
    REQUIRE(WIFSIGNALED(status));  // the child reached the step and died there
    CHECK(WTERMSIG(status) == SIGKILL);
    {
      Store store = Store::open(dir.path());
      const bool committed_rm = at.step != "rm: before commit";
      CHECK(store.checkpoints().size() == (committed_rm ? 3u : 4u));
    }
    check_store(dir.path());
    check_final_gc_reclaims_leftovers(dir.path());
  }
}

TEST_CASE("crash safety: save, rm and gc killed at random points leave every remaining checkpoint intact") {
  TempDir dir("crash-history");
  make_history(dir.path(), 3);
  // How long each operation takes when left alone: kills are spread over that.
  auto timed = [&](Op op, const std::string& name, int v) {
    const auto start = std::chrono::steady_clock::now();
    const int status = run_and_kill(dir.path(), op, name, v, -1);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  };
  const int64_t save_us = timed(Op::kSave, "v3", 3);
  const int64_t gc_us = timed(Op::kRemoveAndGc, "v0", 0);
  MESSAGE("undisturbed: save " << save_us << " us, rm+gc " << gc_us << " us");
  check_store(dir.path());

  int next_version = 4, killed = 0, finished = 0, gc_rounds = 0;
  std::mt19937 rng(2024);
  constexpr int kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    std::vector<std::string> names;
    {
      Store store = Store::open_read_only(dir.path());
      for (const auto& c : store.checkpoints()) names.push_back(c.name);
    }  // closed before fork: the child opens its own connection
    if (round % 3 == 2 && names.size() < 2) {
      // Most saves were killed: add one undisturbed save so there is
      // something to remove (the rm+gc rounds must not depend on luck).
      REQUIRE(run_and_kill(dir.path(), Op::kSave, "v" + std::to_string(next_version), next_version, -1) == 0);
      names.push_back("v" + std::to_string(next_version++));
    }
    const bool remove = round % 3 == 2;
    const Op op = remove ? Op::kRemoveAndGc : Op::kSave;
    const std::string name = remove ? names.front() : "v" + std::to_string(next_version);
    const int v = remove ? 0 : next_version++;
    gc_rounds += remove;
    // Kills spread over twice the undisturbed time: about half the children
    // are killed somewhere inside, the others finish (the machine is shared,
    // so timings vary).
    const int64_t span = 2 * (remove ? gc_us : save_us);
    const int status = run_and_kill(dir.path(), op, name, v, static_cast<int64_t>(rng() % static_cast<uint64_t>(span)));
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) != 0));  // killed or done, never failed
    (WIFSIGNALED(status) ? killed : finished) += 1;
    check_store(dir.path());
  }
  MESSAGE(killed << " of " << kRounds << " children killed, " << finished << " finished; " << gc_rounds
                << " rm+gc rounds");
  CHECK(killed >= 5);  // the kills did land
  CHECK(gc_rounds >= 5);

  check_final_gc_reclaims_leftovers(dir.path());
}

TEST_CASE("a read-only open recovers a catalog whose writer died while writing it") {
  TempDir dir("crash-journal");
  make_history(dir.path(), 3);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Write the database file itself before committing (a one-page cache
    // spills), so the journal left behind is hot: only a rollback gets the
    // committed state back.
    sqlite3* db = nullptr;
    if (sqlite3_open_v2((dir / "catalog.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) _exit(3);
    sqlite3_exec(db, "PRAGMA cache_size = 1; PRAGMA cache_spill = 1; BEGIN IMMEDIATE; "
                     "DELETE FROM chunks; DELETE FROM checkpoints;",
                 nullptr, nullptr, nullptr);
    raise(SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(std::filesystem::exists(dir / "catalog.db-journal"));
  check_store(dir.path());
  CHECK(Store::open_read_only(dir.path()).checkpoints().size() == 3);
}

TEST_CASE("a full disk while migrating names the cause and leaves the catalog as it was") {
  TempDir dir("crash-full");
  fs::copy(fs::path(TESSERA_TEST_DATA) / "store-v1", dir.path(), fs::copy_options::recursive);
  // Files may not grow past 16 KiB: the rollback journal cannot be written.
  const std::string what = tessera::test::with_file_size_limit(16 << 10, [&] {
    Store::open(dir.path());
    return std::string("opened");
  });
  INFO(what);
  CHECK_FALSE(has(what, "the child died"));
  CHECK(what != "opened");
  CHECK_FALSE(has(what, "no transaction is active"));
  CHECK((has(what, "disk") || has(what, "I/O") || has(what, "full")));
  // Nothing changed: still schema 1, and a writer with room migrates it.
  CHECK(has(error_of([&] { Store::open_read_only(dir.path()); }), "needs migrating"));
  Store store = Store::open(dir.path());
  CHECK(store.checkpoints().size() == 3);
  CHECK(verify(store).damaged.empty());
}
