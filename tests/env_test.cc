// Stores on an Env (lib/src/io/env.h; the Envs themselves: io_test.cc):
// errors that reach the user naming the file, and power-loss crash tests:
// save, rm and gc on an in-memory store lose power at every call they make
// to the Env (and right after they return); after "reboot" every committed
// checkpoint loads bit-exact and verifies, and a gc leaves it so.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <set>

#include "engine/store_impl.h"
#include "env_util.h"
#include "history_util.h"
#include "io/fault_injection_env.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::error_of;
using tessera::test::has;
using tessera::test::Model;
using tessera::test::names_in;
using tessera::test::read_all;
using tessera::test::write_file;
using io::FaultInjectionEnv;
using Op = FaultInjectionEnv::Op;
using Call = FaultInjectionEnv::Call;

namespace {

// A copy of every directory and file of `from`, in a new MemEnv.
std::shared_ptr<Env> clone(Env& from) {
  auto to = new_mem_env();
  std::vector<std::string> dirs{""};
  while (!dirs.empty()) {
    const std::string dir = dirs.back();
    dirs.pop_back();
    for (const DirEntry& e : from.list_dir(dir.empty() ? "/" : dir)) {
      const std::string path = dir + "/" + e.name;
      if (e.type == FileType::kDirectory) {
        to->make_dirs(path);
        dirs.push_back(path);
      } else {
        write_file(*to, path, read_all(from, path), false);
      }
    }
  }
  return to;
}

constexpr int kTensors = 3, kChunksPerTensor = 4;
constexpr size_t kChunkFloats = 1024;  // 4 KiB chunks

// Version v of a model whose chunks change a few at a time (history_util.h:
// checkpoints share chunks and packs become partly dead as old ones are removed).
Model version(int v) { return test::versioned_model(v, kTensors, kChunksPerTensor, kChunkFloats); }

SaveOptions save_options() {
  SaveOptions o = test::raw_chunks(kChunkFloats * 4);
  o.pack_bytes = 10 << 10;  // two or three chunks a pack
  return o;
}

GcOptions gc_options() {
  GcOptions o;
  o.grace = std::chrono::seconds(0);
  o.rewrite_below = 0.9;
  o.pack_bytes = 10 << 10;
  return o;
}

const std::string kStore = "/store";

Store open_store(std::shared_ptr<Env> env) {
  StoreOptions o;
  o.env = std::move(env);
  return Store::open(kStore, o);
}

void run_gc_now(Store& store) {
  const GcOptions o = gc_options();
  run_gc(store, plan_gc(store, o), o);
}

// Checkpoints v0..v(n-1) on a new MemEnv; `removed` are then removed (no gc).
std::shared_ptr<Env> history(int n, const std::vector<std::string>& removed = {}) {
  auto env = new_mem_env();
  Store store = open_store(env);
  for (int v = 0; v < n; ++v) save(version(v).state(), store, "v" + std::to_string(v), save_options());
  if (!removed.empty()) remove_checkpoints(store, removed);
  return env;
}

// What a rebooted store must hold: `must` loads bit-exact; `may` is absent
// or loads bit-exact; nothing else is listed; verify is clean.
void check_rebooted(Store& store, const std::set<std::string>& must, const std::set<std::string>& may) {
  std::set<std::string> listed;
  for (const auto& c : store.checkpoints()) {
    CAPTURE(c.name);
    listed.insert(c.name);
    CHECK((must.count(c.name) || may.count(c.name)));
    CHECK(version(std::stoi(c.name.substr(1))).loads_exactly(store, c.name));
  }
  for (const auto& name : must) CHECK_MESSAGE(listed.count(name), "lost: " << name);
  const VerifyReport report = verify(store);
  CHECK(report.ok());
  for (const auto& d : report.damaged) MESSAGE(d.pack << ": " << d.problem);
}

struct Scenario {
  std::string name;
  std::shared_ptr<Env> before;  // the disk before the operation (not changed)
  std::function<void(Store&)> op;
  std::set<std::string> must, may;  // after a power loss inside op
  std::set<std::string> after;      // after op returned (and then the power went)
};

// Runs `s.op` on a copy of `s.before`, losing power at call `k` (never when
// k is past the end), then reboots and checks. Returns whether op returned.
bool lose_power(const Scenario& s, uint64_t k) {
  auto disk = clone(*s.before);
  auto env = std::make_shared<FaultInjectionEnv>(disk);
  env->lose_power_at(k);
  bool returned = false;
  try {
    Store store = open_store(env);
    s.op(store);
    returned = true;
  } catch (const Error&) {
  }
  env->set_rule(nullptr);
  env->drop_unsynced();
  Store store = open_store(disk);  // reboot: a new process on what survived
  check_rebooted(store, returned ? s.after : s.must, returned ? std::set<std::string>{} : s.may);
  run_gc_now(store);
  check_rebooted(store, returned ? s.after : s.must, returned ? std::set<std::string>{} : s.may);
  const GcOptions o = gc_options();
  CHECK(plan_gc(store, o).temp_files.empty());
  return returned;
}

void power_loss_at_every_call(const Scenario& s) {
  // Which calls an undisturbed run makes.
  std::vector<Op> ops;
  {
    auto env = std::make_shared<FaultInjectionEnv>(clone(*s.before));
    env->set_rule([&](const Call& c) {
      ops.push_back(c.op);
      return 0;
    });
    Store store = open_store(env);
    s.op(store);
  }
  // Every call, reads included (a power loss before a read leaves the same
  // disk as one before the next write, but the code path differs).
  size_t writes = 0;
  for (Op op : ops) writes += FaultInjectionEnv::changes_disk(op);
  const auto start = std::chrono::steady_clock::now();
  int returned = 0;
  for (uint64_t k = 0; k < ops.size(); ++k) {
    CAPTURE(k);
    CAPTURE(FaultInjectionEnv::name_of(ops[k]));
    returned += lose_power(s, k);
  }
  CHECK(lose_power(s, ops.size()));  // the power goes right after it returned
  MESSAGE(s.name << ": " << ops.size() << " calls (" << writes << " change the disk); power lost at each: "
                 << returned << " runs returned anyway; "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()
                 << " ms");
  CHECK(writes > 10);
}

}  // namespace

TEST_CASE("a store lives wholly in a MemEnv: save, load, rm, gc and verify") {
  auto env = history(3);
  Store store = open_store(env);
  CHECK(store.checkpoints().size() == 3);
  CHECK(version(1).loads_exactly(store, "v1"));
  remove_checkpoints(store, {"v0"});
  run_gc_now(store);
  CHECK(verify(store).ok());
  CHECK(version(2).loads_exactly(store, "v2"));
  CHECK(env->exists(kStore + "/catalog.db"));
  CHECK(!env->exists(kStore + "/catalog.db-journal"));
  CHECK(!std::filesystem::exists(kStore));  // nothing on the real disk
}

TEST_CASE("injected errors reach the user as tessera errors naming the file") {
  auto disk = history(1);
  auto env = std::make_shared<FaultInjectionEnv>(disk);
  Store store = open_store(env);

  // A full disk while writing a pack.
  env->set_rule([](const Call& c) { return c.op == Op::kAppend ? ENOSPC : 0; });
  std::string m = error_of([&] { save(version(1).state(), store, "v1", save_options()); });
  CHECK(has(m, "No space left on device"));
  CHECK(has(m, kStore + "/tmp/"));
  CHECK(names_in(*disk, kStore + "/tmp").empty());  // the temp packs were removed

  // An I/O error syncing the catalog's journal.
  env->set_rule([](const Call& c) { return c.op == Op::kSync && has(c.path, "catalog.db-journal") ? EIO : 0; });
  m = error_of([&] { save(version(1).state(), store, "v1", save_options()); });
  CHECK(has(m, "catalog.db-journal"));
  CHECK(has(m, "Input/output error"));
  bool is_tessera_error = false;
  try {
    save(version(1).state(), store, "v1", save_options());
  } catch (const Error&) {
    is_tessera_error = true;
  }
  CHECK(is_tessera_error);
  env->set_rule(nullptr);
  CHECK(store.checkpoints().size() == 1);
  save(version(1).state(), store, "v1", save_options());
  CHECK(version(1).loads_exactly(store, "v1"));
}

TEST_CASE("power loss at every call of a save: committed checkpoints survive, the new one is whole or absent") {
  power_loss_at_every_call(Scenario{
      "save", history(3), [](Store& s) { save(version(3).state(), s, "v3", save_options()); },
      {"v0", "v1", "v2"}, {"v3"}, {"v0", "v1", "v2", "v3"}});
}

TEST_CASE("power loss at every call of rm") {
  power_loss_at_every_call(Scenario{
      "rm", history(3), [](Store& s) { remove_checkpoints(s, {"v0"}); }, {"v1", "v2"}, {"v0"}, {"v1", "v2"}});
}

TEST_CASE("power loss at every call of gc (deleting and rewriting packs)") {
  auto before = history(4, {"v0", "v1"});
  {
    Store store = open_store(clone(*before));
    const GcPlan plan = plan_gc(store, gc_options());
    REQUIRE(!plan.delete_packs.empty());   // the run deletes
    REQUIRE(!plan.rewrite_packs.empty());  // and rewrites
  }
  power_loss_at_every_call(Scenario{"gc", before, run_gc_now, {"v2", "v3"}, {}, {"v2", "v3"}});
}
