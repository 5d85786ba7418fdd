// The io layer (lib/src/io): ThreadPool (every index once, several at a
// time, the first exception, the thread cap) and the Envs (MemEnv as POSIX
// behaves, FaultInjectionEnv's numbered calls, injected errors and power-loss
// model). env_test.cc runs whole stores on these Envs.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "env_util.h"
#include "io/env.h"
#include "io/fault_injection_env.h"
#include "io/io_error.h"
#include "io/thread_pool.h"
#include "tessera/error.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::error_of;
using tessera::test::has;
using tessera::test::live_threads;
using tessera::test::names_in;
using tessera::test::read_all;
using tessera::test::TempDir;
using tessera::test::write_file;
using io::FaultInjectionEnv;
using io::parent_dir;
using io::rename_durable;
using Op = FaultInjectionEnv::Op;
using Call = FaultInjectionEnv::Call;

// ---- ThreadPool -------------------------------------------------------------

TEST_CASE("ThreadPool: parallel_for runs every index exactly once, batch after batch") {
  for (size_t threads : {1, 2, 3, 8}) {
    io::ThreadPool pool(threads);
    CHECK(pool.workers() == threads - 1);  // the caller is the last worker
    for (size_t n : {0, 1, 2, 7, 1000}) {
      CAPTURE(threads);
      CAPTURE(n);
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](size_t i) { ++hits.at(i); });
      CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
    }
  }
}

TEST_CASE("ThreadPool: a pool of N runs N tasks at once, the caller among them") {
  for (size_t threads : {1, 2, 4}) {
    CAPTURE(threads);
    io::ThreadPool pool(threads);
    std::mutex mu;
    std::condition_variable all_here;
    size_t arrived = 0;
    bool met = true;
    std::set<std::thread::id> ran_on;
    // Each task waits until all N have started: only N threads at once get there.
    pool.parallel_for(threads, [&](size_t) {
      std::unique_lock lock(mu);
      ran_on.insert(std::this_thread::get_id());
      ++arrived;
      all_here.notify_all();
      if (!all_here.wait_for(lock, std::chrono::seconds(20), [&] { return arrived == threads; })) met = false;
    });
    CHECK(met);
    CHECK(ran_on.size() == threads);
    CHECK(ran_on.count(std::this_thread::get_id()) == 1);
  }
}

namespace {

// An exception of its own type, to see that it arrives as itself.
struct Boom : std::runtime_error {
  Boom(const std::string& what, size_t index) : std::runtime_error(what), index(index) {}
  size_t index;
};

}  // namespace

TEST_CASE("ThreadPool: the first exception is rethrown as itself, once every task that started has finished") {
  io::ThreadPool pool(4);
  constexpr size_t n = 64;
  std::atomic<bool> first_thrown{false};
  std::vector<std::atomic<bool>> started(n), finished(n);
  std::string caught;
  size_t caught_index = n;
  try {
    pool.parallel_for(n, [&](size_t i) {
      started[i] = true;
      if (i == 0) {
        first_thrown = true;
        throw Boom("first", 0);
      }
      if (i == 1) {  // throws well after index 0 did
        while (!first_thrown) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        finished[i] = true;
        throw Boom("second", 1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // still running when index 0 throws
      finished[i] = true;
    });
  } catch (const Boom& e) {
    caught = e.what();
    caught_index = e.index;
  }
  CHECK(caught == "first");
  CHECK(caught_index == 0);
  for (size_t i = 1; i < n; ++i) {
    CAPTURE(i);
    CHECK(started[i] == finished[i]);  // none still running (the rest were skipped)
  }

  // The pool goes on working, and a batch without errors throws nothing.
  std::vector<std::atomic<int>> hits(100);
  pool.parallel_for(hits.size(), [&](size_t i) { ++hits[i]; });
  CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));

  // One thread: indexes run in order, so the lowest throwing index is the first.
  io::ThreadPool one(1);
  CHECK(error_of([&] {
          one.parallel_for(10, [](size_t i) {
            if (i == 3 || i == 7) throw std::runtime_error("index " + std::to_string(i));
          });
        }) == "index 3");
}

TEST_CASE("ThreadPool: callers on several threads take turns; each batch runs whole") {
  io::ThreadPool pool(3);
  constexpr size_t kCallers = 4, kBatches = 20, n = 200;
  std::vector<std::vector<std::atomic<int>>> hits(kCallers);
  for (auto& h : hits) h = std::vector<std::atomic<int>>(n);
  std::atomic<int> inside{0}, most_inside{0};
  std::vector<std::thread> callers;
  for (size_t c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (size_t b = 0; b < kBatches; ++b)
        pool.parallel_for(n, [&](size_t i) {
          const int now = ++inside;
          int seen = most_inside;
          while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
          }
          ++hits[c][i];
          --inside;
        });
    });
  for (auto& t : callers) t.join();
  for (size_t c = 0; c < kCallers; ++c) {
    CAPTURE(c);
    CHECK(std::all_of(hits[c].begin(), hits[c].end(), [](const std::atomic<int>& h) { return h == kBatches; }));
  }
  // One batch at a time: its tasks run on the pool's 2 workers and its caller.
  CHECK(most_inside <= 3);
}

TEST_CASE("ThreadPool: at most kMaxThreads, refused beyond it before any thread starts; 0 means one per core") {
  const size_t before = live_threads();
  std::string refused;
  try {
    io::ThreadPool pool(io::kMaxThreads + 1);
  } catch (const InvalidArgument& e) {
    refused = e.what();
  }
  CHECK(refused == "threads must be between 0 (one per core) and 1024, got 1025");
  CHECK(live_threads() == before);  // none started, none left behind

  // The maximum itself is allowed; 0 means one per core, never more than the maximum.
  {
    io::ThreadPool most(io::kMaxThreads);
    CHECK(most.workers() == io::kMaxThreads - 1);  // the caller is the last worker
    CHECK(live_threads() == before + io::kMaxThreads - 1);
    std::atomic<size_t> ran{0};
    most.parallel_for(4096, [&](size_t) { ++ran; });
    CHECK(ran == 4096);
  }
  // The destructor stops its threads (a joined thread may linger in /proc a moment).
  for (int i = 0; i < 500 && live_threads() != before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(live_threads() == before);
  io::ThreadPool per_core(0);
  CHECK(per_core.workers() + 1 <= io::kMaxThreads);
  CHECK(per_core.workers() + 1 == std::clamp<size_t>(std::thread::hardware_concurrency(), 1, io::kMaxThreads));
}

// ---- Env: MemEnv ------------------------------------------------------------

TEST_CASE("MemEnv: files, directories and errors as on POSIX") {
  auto env = new_mem_env();
  env->make_dirs("/s/packs");
  write_file(*env, "/s/packs/a", "hello", false);
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
  write_file(*env, "/s/packs/b", "other", false);
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

namespace {

// The same calls on `env` under `root`, and what each saw (results and error
// messages, with `root` written as ROOT): a MemEnv must see what the posix Env sees.
std::vector<std::string> transcript(Env& env, const std::string& root) {
  std::vector<std::string> out;
  auto note = [&](const std::string& what, std::string seen) {
    for (size_t at; (at = seen.find(root)) != std::string::npos;) seen.replace(at, root.size(), "ROOT");
    out.push_back(what + ": " + seen);
  };
  auto error = [&](const std::string& what, const std::function<void()>& fn) {
    bool io_error = false;
    std::string m;
    try {
      fn();
    } catch (const io::IoError& e) {
      io_error = true;
      m = e.what();
    } catch (const std::exception& e) {
      m = std::string("not an IoError: ") + e.what();
    }
    note(what, io_error ? m : "(no IoError) " + m);
  };
  auto type = [](std::optional<FileStatus> s) {
    if (!s) return std::string("nothing");
    return std::string(s->type == FileType::kRegular ? "file " : s->type == FileType::kDirectory ? "dir " : "other ") +
           std::to_string(s->type == FileType::kRegular ? s->size : 0);
  };
  auto listing = [&](const std::string& dir) {
    std::vector<std::string> names;
    for (const DirEntry& e : env.list_dir(dir))
      names.push_back(e.name + (e.type == FileType::kDirectory ? "/" : e.type == FileType::kRegular ? "" : "?"));
    std::sort(names.begin(), names.end());
    std::string s;
    for (const auto& n : names) s += n + " ";
    return s;
  };

  const std::string a = root + "/a", f = a + "/f", g = a + "/g";
  env.make_dirs(a + "/b");
  env.make_dirs(a + "/b");  // again: no error
  note("made", type(env.status(a + "/b")) + " " + std::to_string(env.exists(a + "/b")));

  auto w = env.create_file(f);
  w->append("hello", 5);
  w->append(" world", 6);
  note("appended", std::to_string(w->size()) + " " + type(env.status(f)));
  w->sync();
  w->close();
  error("create again", [&] { env.create_file(f); });
  error("create in no directory", [&] { env.create_file(root + "/none/x"); });

  auto r = env.open_file(f);
  std::string five(5, '\0');
  r->read_at(6, 5, five.data());
  note("read", std::to_string(r->size()) + " " + five);
  error("read past the end", [&] {
    std::string buf(5, '\0');
    r->read_at(8, 5, buf.data());
  });
  error("open missing", [&] { env.open_file(a + "/missing"); });
  error("open a directory", [&] { env.open_file(a); });

  {
    auto rw = env.open_rw_file(g, true);
    rw->write_at(4, "xy", 2);  // past the end: zeros before it
    std::string buf(10, '?');
    const size_t got = rw->read_at(0, buf.size(), buf.data());
    note("written past the end", std::to_string(rw->size()) + " " + std::to_string(got) + " " +
                                     std::to_string(buf.substr(0, got) == std::string("\0\0\0\0xy", 6)));
    rw->write_at(0, "ab", 2);
    rw->truncate(3);
    const uint64_t size = rw->size();
    const size_t past_end = rw->read_at(5, 3, buf.data());
    const size_t tail = rw->read_at(1, 10, buf.data());
    note("truncated", std::to_string(size) + " " + std::to_string(past_end) + " " + std::to_string(tail) + " " +
                          buf.substr(0, tail));
    rw->sync();
  }
  note("rw file", read_all(env, g) == std::string("ab\0", 3) ? "ab0" : "other");
  error("open rw missing", [&] { env.open_rw_file(a + "/nope", false); });
  error("open rw a directory", [&] { env.open_rw_file(a, false); });

  env.rename(f, g);  // replaces g
  note("renamed", read_all(env, g) + " " + std::to_string(env.exists(f)) + " " + std::to_string(r->size()));
  error("rename missing", [&] { env.rename(f, a + "/h"); });
  note("listed", listing(a));
  note("listed root", listing(root));
  error("list missing", [&] { env.list_dir(root + "/nothing"); });
  error("list a file", [&] { env.list_dir(g); });
  env.sync_dir(a);
  error("sync missing directory", [&] { env.sync_dir(root + "/nothing"); });

  env.remove_file(g);
  env.remove_file(g);  // already gone: no error
  note("removed", std::to_string(env.exists(g)) + " " + type(env.status(g)) + " " + listing(a));
  error("remove a directory", [&] { env.remove_file(a + "/b"); });
  return out;
}

}  // namespace

TEST_CASE("MemEnv does what the posix Env does, call for call") {
  TempDir dir("io-posix");
  const std::vector<std::string> posix = transcript(*posix_env(), dir.path());
  auto mem = new_mem_env();
  mem->make_dirs("/root");
  const std::vector<std::string> in_memory = transcript(*mem, "/root");
  REQUIRE(posix.size() == in_memory.size());
  for (size_t i = 0; i < posix.size(); ++i) {
    CAPTURE(i);
    CHECK(in_memory[i] == posix[i]);
  }
  // What both must see, not only the same thing.
  CHECK(posix.front() == "made: dir 0 1");
  CHECK(has(posix[3], "create in no directory: cannot create 'ROOT/none/x': No such file or directory"));
  CHECK(has(posix[5], "read past the end: file 'ROOT/a/f' is truncated: wanted 2 more bytes at offset 11"));
  CHECK(has(posix[9], "truncated: 3 0 2 b"));
}

TEST_CASE("MemEnv and FaultInjectionEnv: many threads at once lose no file, byte or call") {
  auto mem = new_mem_env();
  mem->make_dirs("/d");
  auto env = std::make_shared<FaultInjectionEnv>(mem);
  io::ThreadPool pool(8);
  constexpr size_t n = 256;
  std::atomic<size_t> sized{0};
  pool.parallel_for(n, [&](size_t i) {
    const std::string path = "/d/f" + std::to_string(i);
    write_file(*env, path, std::string(i, static_cast<char>('a' + i % 26)), false);
    sized += env->status(path)->size == i;
  });
  CHECK(sized == n);
  CHECK(env->calls() == 4 * n);  // create, append, close, status
  const auto names = names_in(*mem, "/d");
  CHECK(names.size() == n);
  size_t right = 0;
  for (size_t i = 0; i < n; ++i)
    right += read_all(*mem, "/d/f" + std::to_string(i)) == std::string(i, static_cast<char>('a' + i % 26));
  CHECK(right == n);
}

TEST_CASE("parent_dir and rename_durable") {
  CHECK(parent_dir("/a/b/c") == "/a/b");
  CHECK(parent_dir("/a") == "/");
  CHECK(parent_dir("a/b") == "a");
  CHECK(parent_dir("a") == ".");

  // rename_durable syncs the target's directory: the new name survives a power loss.
  auto mem = new_mem_env();
  mem->make_dirs("/d/tmp");
  mem->make_dirs("/d/packs");
  FaultInjectionEnv env(mem);
  std::vector<std::string> calls;
  env.set_rule([&](const Call& c) {
    calls.push_back(std::string(FaultInjectionEnv::name_of(c.op)) + " " + c.path);
    return 0;
  });
  write_file(env, "/d/tmp/x", "x", true);
  rename_durable(env, "/d/tmp/x", "/d/packs/x");
  CHECK(calls == std::vector<std::string>{"create /d/tmp/x", "write /d/tmp/x", "fsync /d/tmp/x", "close /d/tmp/x",
                                          "rename /d/packs/x", "fsync directory /d/packs"});
  env.drop_unsynced();
  CHECK(names_in(*mem, "/d/packs") == std::set<std::string>{"x"});
  CHECK(read_all(*mem, "/d/packs/x") == "x");
}

// ---- Env: FaultInjectionEnv -------------------------------------------------

TEST_CASE("FaultInjectionEnv: drop_unsynced keeps synced bytes under durable names only") {
  auto mem = new_mem_env();
  mem->make_dirs("/d/tmp");
  mem->make_dirs("/d/packs");
  write_file(*mem, "/d/packs/old", "before", false);  // there before the fault env: durable
  write_file(*mem, "/d/packs/gone", "keep me", false);
  FaultInjectionEnv env(mem);

  // Created and synced, its directory never synced: lost.
  write_file(env, "/d/tmp/unnamed", "data", true);
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
  write_file(env, "/d/tmp/p.partial", "pack", true);
  rename_durable(env, "/d/tmp/p.partial", "/d/packs/p.pack");
  // A rename whose directory is not synced again is undone.
  write_file(env, "/d/tmp/q.partial", "q", true);
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

TEST_CASE("FaultInjectionEnv: a failed call never reaches the wrapped Env, and fails as an IoError with its errno") {
  auto mem = new_mem_env();
  mem->make_dirs("/d");
  FaultInjectionEnv env(mem);
  std::vector<uint64_t> indexes;
  env.set_rule([&](const Call& c) {
    indexes.push_back(c.index);
    return c.op == Op::kCreate || c.op == Op::kRename ? ENOSPC : 0;
  });
  int errno_seen = 0;
  try {
    env.create_file("/d/x");
  } catch (const io::IoError& e) {
    errno_seen = e.error_number();
    CHECK(std::string(e.what()) == "cannot create '/d/x': No space left on device");
  }
  CHECK(errno_seen == ENOSPC);
  CHECK_FALSE(mem->exists("/d/x"));  // not created underneath

  write_file(*mem, "/d/y", "y", false);
  CHECK(has(error_of([&] { env.rename("/d/y", "/d/z"); }), "cannot rename '/d/z': No space left on device"));
  CHECK(names_in(*mem, "/d") == std::set<std::string>{"y"});  // not renamed underneath
  CHECK(indexes == std::vector<uint64_t>{0, 1});  // numbered from 0, failed calls included

  // Power lost at call k: earlier calls run, call k and every later one fail.
  env.lose_power_at(env.calls() + 2);
  CHECK(env.exists("/d/y"));         // call 2
  auto f = env.open_file("/d/y");    // call 3
  CHECK(has(error_of([&] { f->size(); }), "cannot stat '/d/y': Input/output error"));  // call 4
  CHECK(has(error_of([&] { env.make_dirs("/d/e"); }), "cannot create directory '/d/e': Input/output error"));
  CHECK_FALSE(mem->exists("/d/e"));
  CHECK(env.calls() == 6);
  env.set_rule(nullptr);
  CHECK(read_all(env, "/d/y") == "y");  // the power is back
}

TEST_CASE("FaultInjectionEnv: what a power loss keeps of renames across directories, truncations and old files") {
  auto mem = new_mem_env();
  for (const char* d : {"/d/a", "/d/b", "/d/c"}) mem->make_dirs(d);
  write_file(*mem, "/d/a/old", "old bytes", false);  // found on disk: durable as found
  FaultInjectionEnv env(mem);

  // Moved to another directory whose sync alone followed: under both names.
  write_file(env, "/d/a/x", "x", true);
  env.sync_dir("/d/a");
  env.rename("/d/a/x", "/d/b/x");
  env.sync_dir("/d/b");
  // Moved with both directories synced: under the new name only.
  write_file(env, "/d/c/y", "y", true);
  env.sync_dir("/d/c");
  env.rename("/d/c/y", "/d/b/y");
  env.sync_dir("/d/b");
  env.sync_dir("/d/c");
  // Truncated without a sync: back to what was found.
  {
    auto rw = env.open_rw_file("/d/a/old", false);
    rw->truncate(3);
    CHECK(rw->size() == 3);
  }
  env.drop_unsynced();
  CHECK(names_in(*mem, "/d/a") == std::set<std::string>{"old", "x"});
  CHECK(names_in(*mem, "/d/b") == std::set<std::string>{"x", "y"});
  CHECK(names_in(*mem, "/d/c").empty());
  CHECK(read_all(*mem, "/d/a/x") == "x");
  CHECK(read_all(*mem, "/d/b/x") == "x");
  CHECK(read_all(*mem, "/d/a/old") == "old bytes");

  // Truncated and synced: kept. Created by open_rw_file and never synced: empty.
  {
    auto rw = env.open_rw_file("/d/a/old", false);
    rw->truncate(3);
    rw->sync();
    auto fresh = env.open_rw_file("/d/a/new", true);
    fresh->write_at(0, "unsynced", 8);
  }
  env.sync_dir("/d/a");
  env.drop_unsynced();
  CHECK(read_all(*mem, "/d/a/old") == "old");
  CHECK(read_all(*mem, "/d/a/new").empty());
}

TEST_CASE("FaultInjectionEnv over the posix Env: the same model on real files") {
  TempDir dir("io-fault");
  const std::string d = dir.path();
  auto base = posix_env();
  base->make_dirs(d + "/tmp");
  base->make_dirs(d + "/packs");
  FaultInjectionEnv env(base);
  write_file(env, d + "/tmp/p.partial", "pack", true);
  rename_durable(env, d + "/tmp/p.partial", d + "/packs/p.pack");
  write_file(env, d + "/tmp/q.partial", "lost", false);
  {
    auto f = env.create_file(d + "/packs/half");
    f->append("kept", 4);
    f->sync();
    env.sync_dir(d + "/packs");
    f->append(" lost", 5);
    f->close();
  }
  CHECK(test::files_in(d + "/tmp") == std::set<std::string>{"q.partial"});
  env.drop_unsynced();
  CHECK(test::files_in(d + "/tmp").empty());
  CHECK(test::files_in(d + "/packs") == std::set<std::string>{"half", "p.pack"});
  CHECK(read_all(*base, d + "/packs/p.pack") == "pack");
  CHECK(read_all(*base, d + "/packs/half") == "kept");
  CHECK(env.on_memory_filesystem(d) == base->on_memory_filesystem(d));
  CHECK_FALSE(env.lets_sqlite_use_os_files());  // until told so
  env.let_sqlite_use_os_files(true);
  CHECK(env.lets_sqlite_use_os_files());
}
