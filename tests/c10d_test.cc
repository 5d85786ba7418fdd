// Multi-process save and load over c10d's TCPStore on loopback: N worker
// processes (c10d_worker) save, M others load in another layout; a rank that
// throws or dies mid-save fails the save everywhere. The test hosts the
// TCPStore itself (as torchrun's agent does) on a free port, so suites can
// run in parallel.
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tessera/checkpoint.h"
#include "tessera/inspect.h"
#include "test_util.h"

#include <doctest/doctest.h>

extern char** environ;

using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::has;

namespace {

struct Outcome {
  std::vector<int> codes;
  std::vector<std::string> outputs;
  int64_t keys_left = -1;  // keys in the job's TCPStore once every worker has exited
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs `world` workers as one job against a fresh agent-style TCPStore;
// `env` adds variables (NAME=value) to theirs.
Outcome run_job(int world, const std::vector<std::string>& args, const TempDir& logs,
                const std::vector<std::string>& env = {}) {
  static int job = 0;
  c10d::TCPStoreOptions o;
  o.port = 0;  // any free port
  o.isServer = true;
  o.waitWorkers = false;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", o);
  const std::string worker = std::getenv("TESSERA_C10D_WORKER");
  std::vector<pid_t> pids;
  std::vector<std::string> logfiles;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env_strings = {
        "RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(r),
        "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(server->getPort()),
        "TORCHELASTIC_USE_AGENT_STORE=True", "TORCHELASTIC_RESTART_COUNT=0"};
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    for (char** e = environ; *e; ++e) env_strings.push_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_s = {worker};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    logfiles.push_back(logs / ("job" + std::to_string(job) + "-rank" + std::to_string(r) + ".log"));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, logfiles.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    REQUIRE(posix_spawn(&pid, worker.c_str(), &fa, nullptr, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&fa);
    pids.push_back(pid);
  }
  Outcome out;
  for (size_t r = 0; r < pids.size(); ++r) {
    int status = 0;
    waitpid(pids[r], &status, 0);
    out.codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    out.outputs.push_back(slurp(logfiles[r]));
  }
  out.keys_left = server->getNumKeys();
  ++job;
  return out;
}


}  // namespace

TEST_CASE("save on N processes, load on M in another layout, for several (N, M)") {
  TempDir dir("c10d");
  for (auto [n, m] : {std::pair{4, 2}, std::pair{3, 5}, std::pair{1, 3}}) {
    CAPTURE(n);
    CAPTURE(m);
    const std::string ckpt = "n" + std::to_string(n);
    Outcome s = run_job(n, {"save", dir / "store", ckpt}, dir);
    for (int r = 0; r < n; ++r) {
      CAPTURE(s.outputs[r]);
      CHECK(s.codes[r] == 0);
    }
    CHECK(s.keys_left == 0);  // the save deleted every key it made
    Outcome l = run_job(m, {"load", dir / "store", ckpt}, dir);
    for (int r = 0; r < m; ++r) {
      CAPTURE(l.outputs[r]);
      CHECK(l.codes[r] == 0);
      CHECK(has(l.outputs[r], "exact on "));
      CHECK(has(l.outputs[r], "(saved by " + std::to_string(n) + " ranks)"));
    }
  }
  auto store = tessera::Store::open_read_only(dir / "store");
  CHECK(store.checkpoints().size() == 3);
  CHECK(store.checkpoint("n4").world_size == 4);
  CHECK(tessera::verify(store).ok());
}

TEST_CASE("a rank that throws mid-save: every rank fails naming it; no checkpoint") {
  TempDir dir("c10d");
  REQUIRE(run_job(2, {"save", dir / "store", "good"}, dir).codes == std::vector<int>{0, 0});
  Outcome o = run_job(3, {"save", dir / "store", "bad", "fail-rank", "1"}, dir);
  for (int r = 0; r < 3; ++r) {
    CAPTURE(o.outputs[r]);
    CHECK(o.codes[r] == 1);
    CHECK(has(o.outputs[r], "save of checkpoint 'bad' failed: rank 1: tensor 'w'"));
  }
  CHECK(o.keys_left == 0);
  auto store = tessera::Store::open_read_only(dir / "store");
  CHECK(store.checkpoints().size() == 1);
  CHECK(run_job(2, {"load", dir / "store", "good"}, dir).codes == std::vector<int>{0, 0});
}

TEST_CASE("a rank killed mid-save: the others fail within the timeout; earlier checkpoints intact") {
  TempDir dir("c10d");
  REQUIRE(run_job(2, {"save", dir / "store", "good"}, dir).codes == std::vector<int>{0, 0});
  auto start = std::chrono::steady_clock::now();
  Outcome o = run_job(3, {"save", dir / "store", "bad", "die-rank", "2"}, dir);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
  CHECK(o.codes[2] == 9);
  for (int r = 0; r < 2; ++r) {
    CAPTURE(o.outputs[r]);
    CHECK(o.codes[r] == 1);
    CHECK(has(o.outputs[r], "rank 2 did not report"));
  }
  auto store = tessera::Store::open_read_only(dir / "store");
  CHECK(store.checkpoints().size() == 1);
  CHECK(tessera::verify(store).ok());
  CHECK(run_job(3, {"load", dir / "store", "good"}, dir).codes == std::vector<int>{0, 0, 0});
}

TEST_CASE("rank 0 killed after deciding to commit: the others report what the catalog holds") {
  TempDir dir("c10d");
  const std::vector<std::string> fast = {"TESSERA_SAVE_TIMEOUT_MS=1000"};
  // Killed after its commit, before reporting: the checkpoint exists, and every other rank says so.
  Outcome o = run_job(3, {"save", dir / "store", "late", "die-after-commit", "0"}, dir, fast);
  CHECK(o.codes[0] == 9);
  for (int r = 1; r < 3; ++r) {
    CAPTURE(o.outputs[r]);
    CHECK(o.codes[r] == 0);
  }
  // Killed inside its transaction, right after deciding: a hot journal is left; the others roll it back
  // (taking the catalog's write lock) and fail.
  o = run_job(3, {"save", dir / "store", "lost", "die-after-decide", "0"}, dir, fast);
  CHECK(o.codes[0] == 9);
  for (int r = 1; r < 3; ++r) {
    CAPTURE(o.outputs[r]);
    CHECK(o.codes[r] == 1);
    CHECK(has(o.outputs[r], "the coordinator (rank 0) decided to commit but did not report"));
    CHECK(has(o.outputs[r], "the checkpoint is not in the catalog"));
  }
  auto store = tessera::Store::open_read_only(dir / "store");
  REQUIRE(store.checkpoints().size() == 1);
  CHECK(store.checkpoints()[0].name == "late");
  CHECK(tessera::verify(store).ok());
  CHECK(run_job(2, {"load", dir / "store", "late"}, dir).codes == std::vector<int>{0, 0});
}

TEST_CASE("launching with torchrun --no-python" * doctest::skip(std::getenv("TESSERA_TORCHRUN") == nullptr)) {
  TempDir dir("c10d");
  const std::string torchrun = std::getenv("TESSERA_TORCHRUN"), worker = std::getenv("TESSERA_C10D_WORKER");
  std::string cmd = torchrun + " --standalone --nproc_per_node=3 --no-python " + worker + " save " + (dir / "store") +
                    " via-torchrun > " + (dir / "torchrun.log") + " 2>&1";
  int rc = std::system(cmd.c_str());
  CAPTURE(slurp(dir / "torchrun.log"));
  CHECK(rc == 0);
  auto store = tessera::Store::open_read_only(dir / "store");
  CHECK(store.checkpoint("via-torchrun").world_size == 3);
  std::string launch = std::string(std::getenv("TESSERA_LAUNCH")) + " 2 " + worker + " load " + (dir / "store") +
                       " via-torchrun > " + (dir / "launch.log") + " 2>&1";
  rc = std::system(launch.c_str());
  CAPTURE(slurp(dir / "launch.log"));
  CHECK(rc == 0);
  CHECK(has(slurp(dir / "launch.log"), "(saved by 3 ranks)"));
  CHECK(has(slurp(dir / "launch.log"), "exact on "));
}
