// The Env (lib/src/io/env.h): MemEnv and FaultInjectionEnv behaviour, errors
// that reach the user naming the file, and power-loss crash tests: save, rm
// and gc on an in-memory store lose power at every call they make to the Env
// (and right after they return); after "reboot" every committed
// checkpoint loads bit-exact and verifies, and a gc leaves it so.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>

#include "engine/store_impl.h"
#include "history_util.h"
#include "io/fault_injection_env.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::error_of;
using tessera::test::has;
using tessera::test::Model;
using Op = FaultInjectionEnv::Op;
using Call = FaultInjectionEnv::Call;

namespace {

std::string read_all(Env& env, const std::string& path) {
  auto f = env.open_file(path);
  std::string bytes(f->size(), '\0');
  f->read_at(0, bytes.size(), bytes.data());
  return bytes;
}

void write(Env& env, const std::string& path, const std::string& bytes, bool sync) {
  auto f = env.create_file(path);
  f->append(bytes.data(), bytes.size());
  if (sync) f->sync();
  f->close();
}

std::set<std::string> names_in(Env& env, const std::string& dir) {
  std::set<std::string> out;
  for (const DirEntry& e : env.list_dir(dir)) out.insert(e.name);
  return out;
}

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
        write(*to, path, read_all(from, path), false);
      }
    }
  }
  return to;
}

}  // namespace

TEST_CASE("MemEnv: files, directories and errors as on POSIX") {
  auto env = new_mem_env();
  env->make_dirs("/s/packs");
  write(*env, "/s/packs/a", "hello", false);
  CHECK(read_all(*env, "/s/packs/a") == "hello");
  CHECK(has(error_of([&] { env->create_file("/s/packs/a"); }), "cannot create '/s/packs/a': File exists"));
  CHECK(has(error_of([&] { env->create_file("/nowhere/x"); }), "No such file or directory"));
  CHECK(has(error_of([&] { env->open_file("/s/packs/b"); }), "cannot open '/s/packs/b'"));
  CHECK(has(error_of([&] { env->open_file("/s/packs"); }), "is not a regular file"));
  CHECK(has(error_of([&] {
              char buf[10];
              env->open_file("/s/packs/a")->read_at(0, 10, buf);
            }),
            "is truncated"));

  env->make_dirs("/s/packs/sub");
  const auto entries = env->list_dir("/s/packs");
  REQUIRE(entries.size() == 2);
  for (const DirEntry& e : entries)
    CHECK(e.type == (e.name == "a" ? FileType::kRegular : FileType::kDirectory));
  CHECK(names_in(*env, "/s") == std::set<std::string>{"packs"});  // not the grandchildren

  // An open file keeps its bytes after removal; rename replaces.
  auto open = env->open_file("/s/packs/a");
  write(*env, "/s/packs/b", "other", false);
  env->rename("/s/packs/b", "/s/packs/a");
  CHECK(read_all(*env, "/s/packs/a") == "other");
  char buf[5];
  open->read_at(0, 5, buf);
  CHECK(std::string(buf, 5) == "hello");
  env->remove_file("/s/packs/a");
  env->remove_file("/s/packs/a");  // already gone: no error
  CHECK_FALSE(env->exists("/s/packs/a"));
  CHECK(env->status("/s/packs/sub")->type == FileType::kDirectory);
  CHECK(!env->status("/s/packs/a"));
  CHECK(env->on_memory_filesystem("/s"));
}

TEST_CASE("FaultInjectionEnv: drop_unsynced keeps synced bytes under durable names only") {
  auto mem = new_mem_env();
  mem->make_dirs("/d/tmp");
  mem->make_dirs("/d/packs");
  write(*mem, "/d/packs/old", "before", false);  // there before the fault env: durable
  write(*mem, "/d/packs/gone", "keep me", false);
  FaultInjectionEnv env(mem);

  // Created and synced, its directory never synced: lost.
  write(env, "/d/tmp/unnamed", "data", true);
  // Created, synced, directory synced, then more appended without sync.
  {
    auto f = env.create_file("/d/packs/partly");
    f->append("synced", 6);
    f->sync();
    env.sync_dir("/d/packs");
    f->append(" lost", 5);
    f->close();
  }
  // The pack protocol: temp file synced, renamed, target directory synced.
  write(env, "/d/tmp/p.partial", "pack", true);
  rename_durable(env, "/d/tmp/p.partial", "/d/packs/p.pack");
  // A rename whose directory is not synced again is undone.
  write(env, "/d/tmp/q.partial", "q", true);
  env.rename("/d/tmp/q.partial", "/d/packs/q.pack");
  // A removal without a directory sync is undone; an overwrite in place
  // without sync is reverted.
  env.remove_file("/d/packs/gone");
  {
    auto rw = env.open_rw_file("/d/packs/old", false);
    rw->write_at(0, "AFTER!", 6);
  }
  CHECK(read_all(env, "/d/packs/old") == "AFTER!");

  env.drop_unsynced();
  CHECK(names_in(*mem, "/d/packs") == std::set<std::string>{"old", "gone", "partly", "p.pack"});
  CHECK(names_in(*mem, "/d/tmp").empty());
  CHECK(read_all(*mem, "/d/packs/partly") == "synced");
  CHECK(read_all(*mem, "/d/packs/p.pack") == "pack");
  CHECK(read_all(*mem, "/d/packs/gone") == "keep me");
  CHECK(read_all(*mem, "/d/packs/old") == "before");

  // What survived is the new durable state; a synced removal sticks.
  env.remove_file("/d/packs/gone");
  env.sync_dir("/d/packs");
  {
    auto rw = env.open_rw_file("/d/packs/old", false);
    rw->write_at(0, "AFTER!", 6);
    rw->sync();
  }
  env.drop_unsynced();
  CHECK(names_in(*mem, "/d/packs") == std::set<std::string>{"old", "partly", "p.pack"});
  CHECK(read_all(*mem, "/d/packs/old") == "AFTER!");
}

TEST_CASE("FaultInjectionEnv: calls are counted and fail as chosen, naming the file") {
  auto mem = new_mem_env();
  mem->make_dirs("/d");
  FaultInjectionEnv env(mem);
  std::vector<Op> seen;
  env.set_rule([&](const Call& c) {
    seen.push_back(c.op);
    return c.op == Op::kSync ? EIO : 0;
  });
  auto f = env.create_file("/d/x");
  f->append("abc", 3);
  CHECK(has(error_of([&] { f->sync(); }), "cannot fsync '/d/x': Input/output error"));
  CHECK(seen == std::vector<Op>{Op::kCreate, Op::kAppend, Op::kSync});
  CHECK(env.calls() == 3);
  env.lose_power_at(4);
  f->close();  // call 3
  CHECK(has(error_of([&] { env.exists("/d/x"); }), "Input/output error"));
  CHECK(has(error_of([&] { env.list_dir("/d"); }), "cannot list '/d'"));
}

namespace {

constexpr int kTensors = 3, kChunksPerTensor = 4;
constexpr size_t kChunkFloats = 1024;  // 4 KiB chunks

// Version v of a model whose chunks change a few at a time (so checkpoints
// share chunks and packs become partly dead as old ones are removed).
Model version(int v) {
  Model m;
  for (int i = 0; i < kTensors; ++i) {
    auto& t = m.tensors["t" + std::to_string(i)];
    t.resize(kChunksPerTensor * kChunkFloats);
    for (int j = 0; j < kChunksPerTensor; ++j) {
      int changed = 0;
      for (int u = v; u > 0 && !changed; --u)
        if ((u * 7 + i * 3 + j) % 4 == 0) changed = u;
      std::mt19937 rng(static_cast<uint32_t>(i * 1000003 + j * 1009 + changed));
      for (size_t k = 0; k < kChunkFloats; ++k) t[j * kChunkFloats + k] = static_cast<float>(rng()) / 3.0f;
    }
  }
  return m;
}

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
