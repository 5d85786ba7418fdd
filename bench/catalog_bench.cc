// catalog_bench: catalog and control-plane metadata cost at the scale of
// issue 10 (1M chunk references, 1,024 ranks, hundreds of checkpoints).
//
//   catalog_bench DIR [--scenario a|b|both] [--cli PATH]
//       A: [--ranks 1024] [--tensors 100000] [--chunks-per-tensor 10] [--rows 1024]
//          [--layout rows|grid] [--load-world RANKS] [--load-rank WORLD/2] [--changed-pct 1]
//       B: [--history 200] [--hist-tensors 10000] [--hist-chunks-per-tensor 1] [--hist-rows 1024]
//       [--timeout-s 3600] [--keep]
//
// Payloads are tiny (uint8 tensors of ROWS x 1 bytes, compression none,
// SaveOptions.threads = 1) so that what is timed is metadata: hashing and
// writing ~100-byte chunks costs little next to the catalog and the control
// plane. Every chunk holds distinct bytes (a hash of tensor, version and
// offset), so nothing is deduplicated that should not be.
//
// Scenario A ("1M"): R ranks (threads of this process, each with its own
// ControlPlane from in_process_control_planes(R), wrapped to record when each
// rank calls it) save T tensors of ROWS x 1 uint8 with the distributed
// tessera::save into DIR/a, as checkpoint "a". Layout "rows" (default): tensor
// i is split into C row shards (rows [j*ROWS/C, (j+1)*ROWS/C)), shard j saved
// by rank (i*C + j) % R, with chunk_bytes = the whole tensor, so each shard is
// one chunk reference: T*C references, ~T*C/R per rank (FSDP-style). Layout
// "grid": tensor i saved whole by rank i % R with chunk_bytes = ceil(ROWS/C)
// bytes; the chunk grid halves cells, so with ROWS a power of two a tensor
// gets the next power of two >= C chunks (16 for C = 10); the real count is
// printed.
// Measured, in order:
//   save a     wall until every rank returned; rank 0's thread CPU seconds
//              (getrusage RUSAGE_THREAD around its save call) against the
//              median of the other ranks' (their writing share); the
//              difference is the coordinator's work (decode + validate +
//              commit). "commit": the stretch of rank 0's save between the
//              return of one control-plane call and its next call (or its
//              return) that used the most CPU, after its first wait (recorded
//              by wrapping each rank's ControlPlane); with the current
//              protocol that is from receiving the last manifest to setting
//              the outcome: decoding that manifest, validation and the catalog
//              transaction (earlier manifests are decoded as they arrive, and
//              count only in rank 0's total). Wall and rank 0's thread CPU.
//              "rank 0 after its wait": rank 0's thread CPU from the return
//              of its wait for the reports to the return of its save (reading
//              and decoding every manifest, validation, the transaction and
//              its COMMIT, the outcome), and that split at its control-plane
//              calls (the largest part is "commit").
//              Process RSS (sampled from /proc/self/statm every 10 ms) before
//              the save and its peak, and at the commit's start and its peak
//              during the commit: the coordinator's commit memory, as far as
//              threads sharing one process let it be separated.
//              Control plane: set/wait_get calls per rank, distinct keys
//              set, bytes of values set.
//   load plan  one rank of a world of W ranks (default R) loads rows
//              [w*ROWS/W, (w+1)*ROWS/W) of every tensor of "a" (1/W of the
//              state): Store::open_read_only + tessera::load, threads = 1,
//              verify on; wall and process CPU; every loaded byte checked.
//   ls, show a, verify a   Store::checkpoints(), describe(), verify() (threads
//              = 0), each after a fresh Store::open_read_only, as the CLI
//              does; wall and process CPU (the benchmark runs nothing else then).
//   save b     a second checkpoint with CHANGED% of the tensors (every
//              100/CHANGED-th) given new contents, the rest deduplicated.
//   diff a b   diff_checkpoints(), wall and process CPU; then ls again (2 checkpoints).
//   With --cli PATH, the same verbs are also run as whole commands of the
//   built `tessera` binary (stdout to /dev/null): wall, the child's CPU and
//   peak RSS (wait4).
//   Catalog size (catalog.db) after each save, and pack bytes.
//
// Scenario B ("history"): one rank (Store::open once, tessera::save, threads
// = 1) saves H checkpoints "h00001".."hH" of T2 tensors of ROWS2 x 1 uint8 (1
// chunk each by default) into DIR/hist; before each save after the first,
// CHANGED% of the tensors (a rotating set) get new contents. Recorded:
// catalog.db size after every save, growth per checkpoint ((size after H -
// size after 1) / (H - 1)) against the size after the first; wall and CPU of
// every save (#2 and #H reported, and the medians of saves #2..#11 and of
// the last 10, as single saves are noisy); then ls (library, and CLI with --cli), and
// a load of the last checkpoint checked byte for byte.
// Under callgrind (valgrind --tool=callgrind --instr-atstart=no), saves #2
// and #H alone are instrumented and dumped as "save #2" and "save #H": their
// instruction counts compare the two without the machine's noise (the
// CALLGRIND_* requests do nothing outside valgrind).
//
// Ranks are threads of one process: they share the cores (1,024 threads on
// this 2-core box), the page cache and one in-memory control plane whose
// values (the manifests) sit in this process's memory, as a TCPStore server's
// would sit in torchrun's. The process's peak RSS (ru_maxrss) therefore
// includes every rank's state dict and the control plane's values.
//
// Prints a table per scenario and one JSON line. Exits 1 when a rank throws,
// a loaded byte differs, verify finds damage, or diff/show/ls report other
// than what was saved.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(what)
#endif

#include "bench_util.h"
#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "tessera/store.h"

using namespace tessera;
using namespace tessera::bench;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string dir;
  bool run_a = true, run_b = true;
  std::string cli;  // path of the tessera binary, or "" for library calls only
  // A
  int64_t ranks = 1024;
  int64_t tensors = 100000;
  int64_t chunks_per_tensor = 10;
  int64_t rows = 1024;
  bool grid = false;
  int64_t load_world = 0;  // 0: = ranks
  int64_t load_rank = -1;  // -1: load_world / 2
  double changed_pct = 1.0;
  // B
  int64_t history = 200;
  int64_t hist_tensors = 10000;
  int64_t hist_chunks = 1;
  int64_t hist_rows = 1024;
  int64_t timeout_s = 3600;
  bool keep = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "catalog_bench: %s\nusage: catalog_bench DIR [--scenario a|b|both] [--cli PATH]\n"
               "  A: [--ranks 1024] [--tensors 100000] [--chunks-per-tensor 10] [--rows 1024] [--layout rows|grid]\n"
               "     [--load-world RANKS] [--load-rank WORLD/2] [--changed-pct 1]\n"
               "  B: [--history 200] [--hist-tensors 10000] [--hist-chunks-per-tensor 1] [--hist-rows 1024]\n"
               "  [--timeout-s 3600] [--keep]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    auto number = [&]() { return std::atol(value().c_str()); };
    if (a == "--scenario") {
      std::string s = value();
      if (s == "a") o.run_b = false;
      else if (s == "b") o.run_a = false;
      else if (s != "both") usage("--scenario must be a, b or both");
    } else if (a == "--cli") o.cli = value();
    else if (a == "--ranks") o.ranks = number();
    else if (a == "--tensors") o.tensors = number();
    else if (a == "--chunks-per-tensor") o.chunks_per_tensor = number();
    else if (a == "--rows") o.rows = number();
    else if (a == "--layout") {
      std::string s = value();
      if (s == "grid") o.grid = true;
      else if (s != "rows") usage("--layout must be rows or grid");
    } else if (a == "--load-world") o.load_world = number();
    else if (a == "--load-rank") o.load_rank = number();
    else if (a == "--changed-pct") o.changed_pct = std::atof(value().c_str());
    else if (a == "--history") o.history = number();
    else if (a == "--hist-tensors") o.hist_tensors = number();
    else if (a == "--hist-chunks-per-tensor") o.hist_chunks = number();
    else if (a == "--hist-rows") o.hist_rows = number();
    else if (a == "--timeout-s") o.timeout_s = number();
    else if (a == "--keep") o.keep = true;
    else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else if (o.dir.empty()) o.dir = a;
    else usage("more than one DIR");
  }
  if (o.dir.empty()) usage("DIR is required");
  if (o.load_world == 0) o.load_world = o.ranks;
  if (o.load_rank < 0) o.load_rank = o.load_world / 2;
  if (o.ranks < 1 || o.tensors < 1 || o.chunks_per_tensor < 1 || o.rows < 1) usage("A's sizes must be positive");
  if (o.chunks_per_tensor > o.rows) usage("--chunks-per-tensor must not exceed --rows");
  if (!o.grid && o.chunks_per_tensor > o.ranks)
    usage("layout rows puts each of a tensor's shards on a different rank: --chunks-per-tensor <= --ranks");
  if (o.load_world < 1 || o.load_world > o.rows) usage("--load-world must be in 1..ROWS");
  if (o.load_rank >= o.load_world) usage("--load-rank must be below --load-world");
  if (!(o.changed_pct > 0 && o.changed_pct <= 100)) usage("--changed-pct must be in (0, 100]");
  if (o.history < 2 || o.hist_tensors < 1 || o.hist_chunks < 1 || o.hist_rows < 1 || o.hist_chunks > o.hist_rows)
    usage("B's sizes: --history >= 2, the others positive, chunks <= rows");
  if (o.timeout_s < 1) usage("--timeout-s must be positive");
  return o;
}

// ---- clocks, CPU, memory ------------------------------------------------------

const Stopwatch g_epoch;  // every time stamp below is seconds since start
double now() { return g_epoch.seconds(); }

double thread_cpu() { return cpu_seconds(RUSAGE_THREAD); }
double process_cpu() { return cpu_seconds(RUSAGE_SELF); }
uint64_t max_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}
uint64_t current_rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Samples the process's RSS every 10 ms, so that the peak of any interval
// can be read afterwards.
class RssSampler {
 public:
  RssSampler() : thread_([this] { run(); }) {}
  ~RssSampler() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Largest RSS sampled in [t0, t1], and the current one.
  uint64_t peak(double t0, double t1) {
    uint64_t best = current_rss_bytes();
    std::lock_guard lock(mu_);
    for (const auto& [t, rss] : samples_)
      if (t >= t0 && t <= t1) best = std::max(best, rss);
    return best;
  }
  // The sample nearest before t (the current RSS if none).
  uint64_t at(double t) {
    std::lock_guard lock(mu_);
    uint64_t v = 0;
    for (const auto& [ts, rss] : samples_)
      if (ts <= t) v = rss;
    return v ? v : current_rss_bytes();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      const double t = now();
      const uint64_t rss = current_rss_bytes();
      lock.lock();
      samples_.emplace_back(t, rss);
      cv_.wait_for(lock, std::chrono::milliseconds(10), [&] { return stop_; });
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::pair<double, uint64_t>> samples_;
  std::thread thread_;
};

RssSampler* g_rss = nullptr;

double mib(uint64_t b) { return static_cast<double>(b) / kMiB; }

// Wall, process CPU and RSS around one call made on this thread while the
// benchmark runs nothing else.
struct Measured {
  double wall = 0, cpu = 0;
  uint64_t rss_before = 0, rss_peak = 0;
};

template <class Fn>
Measured measure(Fn fn) {
  Measured m;
  m.rss_before = current_rss_bytes();
  const double t0 = now(), c0 = process_cpu();
  fn();
  m.cpu = process_cpu() - c0;
  const double t1 = now();
  m.wall = t1 - t0;
  m.rss_peak = g_rss->peak(t0, t1);
  return m;
}

uint64_t file_bytes(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

uint64_t dir_bytes(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(path, ec))
    if (e.is_regular_file()) total += static_cast<uint64_t>(e.file_size());
  return total;
}

// ---- contents ----------------------------------------------------------------

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Byte k of tensor `tensor` in version `version`: distinct for every chunk
// of every tensor and version (8 pseudo-random bytes per 8-byte word).
uint8_t content_byte(uint64_t tensor, uint64_t version, uint64_t k) {
  const uint64_t w = mix64(mix64(tensor * 0x100000001B3ull + (version << 40)) ^ (k >> 3));
  return static_cast<uint8_t>(w >> (8 * (k & 7)));
}

void fill(std::byte* p, uint64_t n, uint64_t tensor, uint64_t version) {
  for (uint64_t k = 0; k < n; k += 8) {
    const uint64_t w = mix64(mix64(tensor * 0x100000001B3ull + (version << 40)) ^ (k >> 3));
    std::memcpy(p + k, &w, std::min<uint64_t>(8, n - k));
  }
}

std::string tensor_name(int64_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model.layers.%05lld.param_%02lld.weight", static_cast<long long>(i / 100),
                static_cast<long long>(i % 100));
  return buf;
}

// ---- a control plane that records when each rank calls it -------------------

struct Mark {
  double t, cpu;   // time, rank 0's thread CPU
  bool call_exit;  // a control-plane call returned here (else: one is entered, or save returned)
  bool wait;       // of a wait_get call
};

struct RankLog {  // written only by its rank's thread during a save
  uint64_t sets = 0, waits = 0, bytes_set = 0;
  std::vector<Mark> marks;  // rank 0 only: at each call's entry and exit, and at save's return
};

struct PlaneLog {
  std::vector<RankLog> ranks;
  std::mutex mu;
  std::set<std::string> keys;
  void reset(size_t world) {
    ranks.assign(world, RankLog{});
    keys.clear();
  }
};

// Forwards to a plane from in_process_control_planes and records, per rank,
// its calls and (rank 0) the time and thread CPU at each call's entry and exit.
class RecordingPlane : public ControlPlane {
 public:
  RecordingPlane(std::unique_ptr<ControlPlane> inner, PlaneLog& log) : inner_(std::move(inner)), log_(log) {}
  int64_t rank() const override { return inner_->rank(); }
  int64_t world_size() const override { return inner_->world_size(); }
  void set(const std::string& key, const std::string& value) override {
    RankLog& me = mine();
    mark(me, false, false);
    ++me.sets;
    me.bytes_set += key.size() + value.size();
    {
      std::lock_guard lock(log_.mu);
      log_.keys.insert(key);
    }
    inner_->set(key, value);
    mark(me, true, false);
  }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    RankLog& me = mine();
    mark(me, false, true);
    ++me.waits;
    auto v = inner_->wait_get(key, timeout);
    mark(me, true, true);
    return v;
  }
  // A call that does not wait (add, compare_set, delete_key), counted with the sets.
  template <typename F>
  auto counted(const std::string& key, F call) {
    RankLog& me = mine();
    mark(me, false, false);
    ++me.sets;
    {
      std::lock_guard lock(log_.mu);
      log_.keys.insert(key);
    }
    auto r = call();
    mark(me, true, false);
    return r;
  }
  int64_t add(const std::string& key, int64_t delta) override {
    return counted(key, [&] { return inner_->add(key, delta); });
  }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    return counted(key, [&] { return inner_->compare_set(key, expected, desired); });
  }
  bool delete_key(const std::string& key) override {
    return counted(key, [&] { return inner_->delete_key(key); });
  }

 private:
  RankLog& mine() { return log_.ranks[static_cast<size_t>(inner_->rank())]; }
  void mark(RankLog& me, bool exit, bool wait) {
    if (inner_->rank() == 0) me.marks.push_back({now(), thread_cpu(), exit, wait});
  }
  std::unique_ptr<ControlPlane> inner_;
  PlaneLog& log_;

 public:
  const ControlPlane& inner() const { return *inner_; }
};

// ---- scenario A --------------------------------------------------------------

struct DistSave {
  bool ok = true;
  double wall = 0;
  double rank0_cpu = 0, others_cpu_median = 0, others_cpu_max = 0;
  double tail_wall = 0, tail_cpu = 0;
  double after_wait_cpu = 0;                 // rank 0 after its wait for the reports returned
  std::vector<double> after_wait_stretches;  // that, between its control-plane calls
  uint64_t rss_before = 0, rss_tail_start = 0, rss_tail_peak = 0, rss_peak = 0;
  uint64_t chunks = 0, chunks_written = 0, written_bytes = 0, packs = 0;
  uint64_t max_calls_per_rank = 0, rank0_calls = 0, keys = 0, bytes_set = 0;
  uint64_t max_waits_other_rank = 0, rank0_waits = 0;  // rounds: calls that wait for other ranks
  uint64_t keys_left = 0;                               // in the control plane once every rank returned
  uint64_t catalog_bytes = 0;
};

DistSave dist_save(const std::vector<StateDict>& sds, const std::string& store_dir, const std::string& name,
                   std::vector<std::unique_ptr<ControlPlane>>& planes, PlaneLog& log, const SaveOptions& so) {
  const size_t world = sds.size();
  DistSave d;
  log.reset(world);
  std::vector<SaveResult> results(world);
  std::vector<std::string> errors(world);
  std::vector<double> cpu(world, 0.0), done(world, 0.0);
  d.rss_before = current_rss_bytes();
  const double t0 = now();
  std::vector<std::thread> threads;
  threads.reserve(world);
  for (size_t r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      const double c0 = thread_cpu();
      try {
        Store store = Store::open(store_dir);  // every rank opens the store itself, inside the timing as before
        SaveOptions mine = so;
        mine.plane = planes[r].get();
        results[r] = save(sds[r], store, name, mine);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
      cpu[r] = thread_cpu() - c0;
      done[r] = now();
      if (r == 0) log.ranks[0].marks.push_back({done[0], thread_cpu(), false, false});
    });
  for (auto& t : threads) t.join();
  const double t1 = now();
  d.wall = t1 - t0;
  for (size_t r = 0; r < world; ++r)
    if (!errors[r].empty()) {
      std::fprintf(stderr, "save %s: rank %zu failed: %s\n", name.c_str(), r, errors[r].c_str());
      d.ok = false;
    }
  for (const auto& s : results) {
    d.chunks += s.chunks;
    d.chunks_written += s.chunks_written;
    d.written_bytes += s.written_bytes;
    d.packs += s.packs;
  }
  d.rank0_cpu = cpu[0];
  std::vector<double> others(cpu.begin() + 1, cpu.end());
  if (!others.empty()) {
    std::sort(others.begin(), others.end());
    d.others_cpu_median = others[others.size() / 2];
    d.others_cpu_max = others.back();
  }
  // The commit: rank 0's stretch between a control-plane call's return and
  // its next call (or its return from save) that used the most CPU, after its
  // first wait (before it, rank 0 writes its own shards). With the current
  // protocol that is from receiving the last manifest to publishing the
  // outcome: decoding the last manifest, validation, the catalog transaction.
  const auto& mk = log.ranks[0].marks;
  size_t first_wait = 0;
  while (first_wait < mk.size() && !mk[first_wait].wait) ++first_wait;
  if (first_wait == mk.size()) first_wait = 0;  // one rank: no waits
  double best_cpu = -1, best_t0 = t0, best_t1 = t0;
  for (size_t i = first_wait; i + 1 < mk.size(); ++i) {
    if (!mk[i].call_exit) continue;
    const double c = mk[i + 1].cpu - mk[i].cpu;
    if (c > best_cpu) {
      best_cpu = c;
      best_t0 = mk[i].t;
      best_t1 = mk[i + 1].t;
    }
  }
  d.tail_wall = best_t1 - best_t0;
  d.tail_cpu = std::max(0.0, best_cpu);
  // Everything rank 0 does once its wait for the reports returned (reading
  // and decoding them, validation, the transaction and its COMMIT, the
  // outcome), and that split at its control-plane calls.
  if (first_wait + 1 < mk.size() && mk[first_wait + 1].call_exit) {
    d.after_wait_cpu = mk.back().cpu - mk[first_wait + 1].cpu;
    for (size_t i = first_wait + 1; i + 1 < mk.size(); ++i)
      if (mk[i].call_exit) d.after_wait_stretches.push_back(mk[i + 1].cpu - mk[i].cpu);
  }
  d.rss_tail_start = g_rss->at(best_t0);
  d.rss_tail_peak = g_rss->peak(best_t0, best_t1);
  d.rss_peak = g_rss->peak(t0, t1);
  for (const auto& rl : log.ranks) {
    d.max_calls_per_rank = std::max<uint64_t>(d.max_calls_per_rank, rl.sets + rl.waits);
    d.bytes_set += rl.bytes_set;
  }
  d.rank0_calls = log.ranks[0].sets + log.ranks[0].waits;
  d.rank0_waits = log.ranks[0].waits;
  for (size_t r = 1; r < log.ranks.size(); ++r) d.max_waits_other_rank = std::max(d.max_waits_other_rank, log.ranks[r].waits);
  d.keys_left = in_process_key_count(static_cast<const RecordingPlane&>(*planes[0]).inner());
  d.keys = log.keys.size();
  d.catalog_bytes = file_bytes(store_dir + "/catalog.db");
  return d;
}

// Runs the CLI commands: wall, the child's CPU and peak RSS (wait4), exit
// code; stdout to /dev/null. A child's ru_maxrss starts from the RSS of the
// process that forked it (Linux carries the pre-exec peak over), so the
// commands are forked by a launcher process forked at start-up, while this
// one still had a few MiB, and not by this one (hundreds of MiB by then).
struct CliRun {
  bool ran = false;
  int code = -1;
  double wall = 0, cpu = 0;
  uint64_t max_rss = 0;
};

class Launcher {
 public:
  Launcher() {
    int rq[2], rs[2];
    if (pipe(rq) != 0) return;
    if (pipe(rs) != 0) {
      close(rq[0]);
      close(rq[1]);
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(rq[1]);
      close(rs[0]);
      serve(rq[0], rs[1]);
      _exit(0);
    }
    close(rq[0]);
    close(rs[1]);
    if (pid_ < 0) {
      close(rq[1]);
      close(rs[0]);
      return;
    }
    to_ = rq[1];
    from_ = rs[0];
  }
  ~Launcher() {
    if (pid_ <= 0) return;
    close(to_);
    close(from_);
    waitpid(pid_, nullptr, 0);
  }
  CliRun run(const std::vector<std::string>& args) {
    CliRun c;
    if (pid_ <= 0) return c;
    std::string req;
    for (const auto& a : args) req += a + '\0';
    const uint32_t n = static_cast<uint32_t>(req.size());
    const double t0 = now();
    if (!put(to_, &n, sizeof n) || !put(to_, req.data(), n)) return c;
    Reply r{};
    if (!get(from_, &r, sizeof r)) return c;
    c.wall = now() - t0;
    c.ran = r.ran != 0;
    c.code = r.code;
    c.cpu = r.cpu;
    c.max_rss = r.max_rss;
    return c;
  }

 private:
  struct Reply {
    int ran, code;
    double cpu;
    uint64_t max_rss;
  };
  static bool put(int fd, const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n) {
      const ssize_t k = write(fd, c, n);
      if (k <= 0) return false;
      c += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  static bool get(int fd, void* p, size_t n) {
    char* c = static_cast<char*>(p);
    while (n) {
      const ssize_t k = read(fd, c, n);
      if (k <= 0) return false;
      c += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  // The launcher's loop: one request (NUL-separated argv) at a time.
  static void serve(int in, int out) {
    uint32_t n = 0;
    while (get(in, &n, sizeof n)) {
      std::string req(n, '\0');
      if (!get(in, req.data(), n)) return;
      std::vector<char*> argv;
      for (size_t i = 0; i < req.size(); i += std::strlen(req.data() + i) + 1) argv.push_back(req.data() + i);
      argv.push_back(nullptr);
      Reply r{};
      const pid_t pid = fork();
      if (pid == 0) {
        const int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1);
        execv(argv[0], argv.data());
        _exit(127);
      }
      int status = 0;
      rusage ru{};
      if (pid > 0 && wait4(pid, &status, 0, &ru) == pid) {
        r.ran = 1;
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r.cpu = cpu_seconds(ru);
        r.max_rss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
      }
      if (!put(out, &r, sizeof r)) return;
    }
  }
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

Launcher* g_launcher = nullptr;
CliRun run_cli(const std::vector<std::string>& args) { return g_launcher ? g_launcher->run(args) : CliRun{}; }

struct Verb {
  Verb(std::string n, std::string g) : name(std::move(n)), goal(std::move(g)) {}
  std::string name;     // "ls", "show a", ...
  std::string goal;     // issue 10's goal at 1M
  Measured lib;
  bool lib_ok = true;
  CliRun cli;
  int cli_expect = 0;   // expected exit code
  std::string check;    // what was checked
};

std::string json_verb(const Verb& v) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"name\":\"%s\",\"wall_s\":%.4f,\"cpu_s\":%.4f,\"rss_before\":%llu,\"rss_peak\":%llu,\"ok\":%s",
                v.name.c_str(), v.lib.wall, v.lib.cpu, static_cast<unsigned long long>(v.lib.rss_before),
                static_cast<unsigned long long>(v.lib.rss_peak), v.lib_ok ? "true" : "false");
  std::string out = buf;
  if (v.cli.ran) {
    std::snprintf(buf, sizeof buf, ",\"cli\":{\"wall_s\":%.4f,\"cpu_s\":%.4f,\"max_rss\":%llu,\"exit\":%d}",
                  v.cli.wall, v.cli.cpu, static_cast<unsigned long long>(v.cli.max_rss), v.cli.code);
    out += buf;
  }
  return out + "}";
}

std::string json_save(const DistSave& d) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"ok\":%s,\"wall_s\":%.4f,\"rank0_cpu_s\":%.4f,\"others_cpu_median_s\":%.4f,\"others_cpu_max_s\":%.4f,"
                "\"tail_wall_s\":%.4f,\"tail_cpu_s\":%.4f,\"after_wait_cpu_s\":%.4f,\"rss_before\":%llu,\"rss_tail_start\":%llu,"
                "\"rss_tail_peak\":%llu,\"rss_peak\":%llu,\"chunks\":%llu,\"chunks_written\":%llu,"
                "\"written_bytes\":%llu,\"packs\":%llu,\"max_plane_calls_per_rank\":%llu,\"rank0_plane_calls\":%llu,"
                "\"plane_keys\":%llu,\"plane_bytes\":%llu,\"rank0_waits\":%llu,\"max_waits_other_rank\":%llu,"
                "\"plane_keys_left\":%llu,\"catalog_bytes\":%llu}",
                d.ok ? "true" : "false", d.wall, d.rank0_cpu, d.others_cpu_median, d.others_cpu_max, d.tail_wall,
                d.tail_cpu, d.after_wait_cpu, static_cast<unsigned long long>(d.rss_before),
                static_cast<unsigned long long>(d.rss_tail_start), static_cast<unsigned long long>(d.rss_tail_peak),
                static_cast<unsigned long long>(d.rss_peak), static_cast<unsigned long long>(d.chunks),
                static_cast<unsigned long long>(d.chunks_written), static_cast<unsigned long long>(d.written_bytes),
                static_cast<unsigned long long>(d.packs), static_cast<unsigned long long>(d.max_calls_per_rank),
                static_cast<unsigned long long>(d.rank0_calls), static_cast<unsigned long long>(d.keys),
                static_cast<unsigned long long>(d.bytes_set), static_cast<unsigned long long>(d.rank0_waits),
                static_cast<unsigned long long>(d.max_waits_other_rank), static_cast<unsigned long long>(d.keys_left),
                static_cast<unsigned long long>(d.catalog_bytes));
  return buf;
}

void print_save_row(const char* label, const DistSave& d, const char* goal) {
  std::printf("%-34s %9.2f %9.2f %21s  %s\n", label, d.wall, d.rank0_cpu,
              (std::to_string(static_cast<long long>(mib(d.rss_before))) + " -> " +
               std::to_string(static_cast<long long>(mib(d.rss_peak))) + " MiB")
                  .c_str(),
              goal);
}

std::string rss_cell(const Measured& m) {
  return std::to_string(static_cast<long long>(mib(m.rss_before))) + " -> " +
         std::to_string(static_cast<long long>(mib(m.rss_peak))) + " MiB";
}

bool scenario_a(const Options& o, std::string& json) {
  const std::string store_dir = o.dir + "/a";
  fs::remove_all(store_dir);
  fs::create_directories(o.dir);
  const int64_t R = o.ranks, T = o.tensors, C = o.chunks_per_tensor, L = o.rows;
  const int64_t period = std::max<int64_t>(1, std::llround(100.0 / o.changed_pct));
  bool ok = true;

  // Contents: version 0 of every tensor, version 1 of the changed ones.
  const Stopwatch gen_sw;
  std::unique_ptr<std::byte[]> v0(new std::byte[static_cast<size_t>(T * L)]);
  for (int64_t i = 0; i < T; ++i) fill(v0.get() + i * L, static_cast<uint64_t>(L), static_cast<uint64_t>(i), 0);
  const int64_t n_changed = (T + period - 1) / period;
  std::unique_ptr<std::byte[]> v1(new std::byte[static_cast<size_t>(n_changed * L)]);
  for (int64_t i = 0; i < T; i += period)
    fill(v1.get() + (i / period) * L, static_cast<uint64_t>(L), static_cast<uint64_t>(i), 1);

  // Each rank's state dicts for checkpoints a and b.
  auto build = [&](bool b) {
    std::vector<StateDict> sds(static_cast<size_t>(R));
    for (int64_t i = 0; i < T; ++i) {
      std::byte* base = (b && i % period == 0) ? v1.get() + (i / period) * L : v0.get() + i * L;
      const std::string name = tensor_name(i);
      if (o.grid) {
        sds[static_cast<size_t>(i % R)].add_tensor(name, TensorView::contiguous("uint8", 1, base, {L, 1}));
      } else {
        for (int64_t j = 0; j < C; ++j) {
          const int64_t r0 = j * L / C, r1 = (j + 1) * L / C;
          sds[static_cast<size_t>((i * C + j) % R)].add_tensor(
              name, TensorView::contiguous("uint8", 1, base + r0, {r1 - r0, 1}).as_shard({L, 1}, {r0, 0}));
        }
      }
    }
    return sds;
  };
  const uint64_t rss_before_sd = current_rss_bytes();
  std::vector<StateDict> sd_a = build(false);
  const uint64_t rss_after_sd = current_rss_bytes();
  const double gen_s = gen_sw.seconds();

  SaveOptions so;
  so.threads = 1;
  so.compression = Compression::kNone;
  so.chunk_bytes = o.grid ? (L + C - 1) / C : L;
  so.timeout = std::chrono::seconds(o.timeout_s);
  PlaneLog log;
  std::vector<std::unique_ptr<ControlPlane>> planes;
  {
    auto inner = in_process_control_planes(R);
    for (auto& p : inner) planes.push_back(std::make_unique<RecordingPlane>(std::move(p), log));
  }

  std::printf("catalog_bench A: %lld ranks (threads), %lld tensors uint8 [%lld, 1], layout %s, chunk_bytes %lld, "
              "threads 1 per rank, compression none\n",
              static_cast<long long>(R), static_cast<long long>(T), static_cast<long long>(L),
              o.grid ? "grid (whole tensor on rank i % R)" : "rows (C row shards on ranks (i*C+j) % R)",
              static_cast<long long>(so.chunk_bytes));
  std::fflush(stdout);

  const DistSave sa = dist_save(sd_a, store_dir, "a", planes, log, so);
  ok = ok && sa.ok;
  const uint64_t catalog_a = sa.catalog_bytes;
  std::printf("  save a done: %.2f s, %llu chunk refs\n", sa.wall, static_cast<unsigned long long>(sa.chunks));
  std::fflush(stdout);
  sd_a.clear();

  std::vector<Verb> verbs;
  const std::string cli = o.cli;

  // Load plan: rank w of a world of W loads rows [w*L/W, (w+1)*L/W) of every tensor.
  const int64_t W = o.load_world, w = o.load_rank;
  const int64_t lr0 = w * L / W, lr1 = (w + 1) * L / W, lrows = lr1 - lr0;
  std::unique_ptr<std::byte[]> target(new std::byte[static_cast<size_t>(T * lrows)]);
  std::memset(target.get(), 0, static_cast<size_t>(T * lrows));
  StateDict load_sd;
  for (int64_t i = 0; i < T; ++i)
    load_sd.add_tensor(tensor_name(i),
                       TensorView::contiguous("uint8", 1, target.get() + i * lrows, {lrows, 1}).as_shard({L, 1}, {lr0, 0}));
  LoadResult lres;
  Verb load_v{"load plan (1/" + std::to_string(W) + " of every tensor)", "< 1 s (stretch 0.1 s)"};
  if (sa.ok) {
    try {
      load_v.lib = measure([&] {
        Store store = Store::open_read_only(store_dir);
        LoadOptions lo;
        lo.threads = 1;
        lres = load(load_sd, store, "a", lo);
      });
      for (int64_t i = 0; i < T && load_v.lib_ok; ++i)
        for (int64_t k = 0; k < lrows; ++k)
          if (static_cast<uint8_t>(target[static_cast<size_t>(i * lrows + k)]) !=
              content_byte(static_cast<uint64_t>(i), 0, static_cast<uint64_t>(lr0 + k))) {
            std::fprintf(stderr, "load: tensor %lld row %lld differs\n", static_cast<long long>(i),
                         static_cast<long long>(lr0 + k));
            load_v.lib_ok = false;
            break;
          }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "load: %s\n", e.what());
      load_v.lib_ok = false;
    }
    load_v.check = load_v.lib_ok ? "bytes OK" : "MISMATCH";
    verbs.push_back(load_v);
  }
  load_sd = StateDict();
  target.reset();

  auto lib_verb = [&](Verb v, auto fn, std::vector<std::string> cli_args, int expect) {
    try {
      v.lib = measure([&] { v.lib_ok = fn(v.check); });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", v.name.c_str(), e.what());
      v.lib_ok = false;
    }
    if (!cli.empty()) {
      cli_args.insert(cli_args.begin(), cli);
      v.cli = run_cli(cli_args);
      v.cli_expect = expect;
    }
    std::printf("  %s done: %.2f s\n", v.name.c_str(), v.lib.wall);
    std::fflush(stdout);
    verbs.push_back(v);
  };

  if (sa.ok) {
    lib_verb(
        Verb{"ls (1 checkpoint)", "< 1 s"},
        [&](std::string& check) {
          Store store = Store::open_read_only(store_dir);
          auto cs = store.checkpoints();
          check = std::to_string(cs.size()) + " checkpoint(s)";
          return cs.size() == 1 && cs[0].name == "a";
        },
        {"ls", store_dir}, 0);
    lib_verb(
        Verb{"show a", "< 1 s"},
        [&](std::string& check) {
          Store store = Store::open_read_only(store_dir);
          auto es = describe(store, "a");
          int64_t refs = 0;
          for (const auto& e : es) refs += e.chunks;
          check = std::to_string(es.size()) + " entries, " + std::to_string(refs) + " refs";
          return static_cast<int64_t>(es.size()) == T && static_cast<uint64_t>(refs) == sa.chunks;
        },
        {"show", store_dir, "a"}, 0);
    lib_verb(
        Verb{"verify a", "bounded by reading"},
        [&](std::string& check) {
          Store store = Store::open_read_only(store_dir);
          auto rep = verify(store, {"a"});
          check = std::to_string(rep.chunks_checked) + " chunks, " + human_bytes(static_cast<double>(rep.bytes_checked)) +
                  (rep.ok() ? ", intact" : ", DAMAGED");
          return rep.ok() && rep.chunks_checked > 0;
        },
        {"verify", store_dir, "a"}, 0);
  }

  // Save b: CHANGED% of the tensors with new contents.
  DistSave sb;
  sb.ok = false;
  if (sa.ok) {
    std::vector<StateDict> sd_b = build(true);
    sb = dist_save(sd_b, store_dir, "b", planes, log, so);
    ok = ok && sb.ok;
    std::printf("  save b done: %.2f s\n", sb.wall);
    std::fflush(stdout);
  }
  if (sb.ok) {
    lib_verb(
        Verb{"diff a b", "< 5 s"},
        [&](std::string& check) {
          Store store = Store::open_read_only(store_dir);
          auto rep = diff_checkpoints(store, "a", "b");
          check = std::to_string(rep.changed.size()) + " changed, " + std::to_string(rep.unchanged) + " unchanged";
          return static_cast<int64_t>(rep.changed.size()) == n_changed && rep.added.empty() && rep.removed.empty() &&
                 rep.unchanged == T - n_changed;
        },
        {"diff", store_dir, "a", "b"}, 1);
    lib_verb(
        Verb{"ls (2 checkpoints)", "< 1 s"},
        [&](std::string& check) {
          Store store = Store::open_read_only(store_dir);
          auto cs = store.checkpoints();
          check = std::to_string(cs.size()) + " checkpoint(s)";
          return cs.size() == 2;
        },
        {"ls", store_dir}, 0);
  }
  const uint64_t catalog_b = file_bytes(store_dir + "/catalog.db");
  const uint64_t pack_bytes = dir_bytes(store_dir + "/packs");
  if (!o.keep) fs::remove_all(store_dir);

  for (const auto& v : verbs) {
    ok = ok && v.lib_ok;
    if (v.cli.ran && v.cli.code != v.cli_expect) {
      std::fprintf(stderr, "cli %s: exit %d, expected %d\n", v.name.c_str(), v.cli.code, v.cli_expect);
      ok = false;
    }
  }

  // Table.
  std::printf("\n%llu chunk refs in checkpoint a (%.1f per tensor, %.1f per rank); inputs built in %.1f s "
              "(state dicts: %.0f MiB of RSS)\n",
              static_cast<unsigned long long>(sa.chunks), static_cast<double>(sa.chunks) / static_cast<double>(T),
              static_cast<double>(sa.chunks) / static_cast<double>(R), gen_s,
              mib(rss_after_sd > rss_before_sd ? rss_after_sd - rss_before_sd : 0));
  std::printf("%-34s %9s %9s %21s  %s\n", "case", "wall s", "CPU s", "RSS before -> peak", "issue 10 goal at 1M");
  print_save_row("save a (all ranks; CPU = rank 0)", sa, "");
  std::printf("%-34s %9.2f %9.2f %21s  %s\n", "  commit (rank 0)", sa.tail_wall, sa.tail_cpu,
              (std::to_string(static_cast<long long>(mib(sa.rss_tail_start))) + " -> " +
               std::to_string(static_cast<long long>(mib(sa.rss_tail_peak))) + " MiB")
                  .c_str(),
              "commit < 5 s; coordinator < 1 GiB");
  std::printf("%-34s %9s %9.2f %21s  %s\n", "  rank 0 CPU - median rank CPU", "", sa.rank0_cpu - sa.others_cpu_median,
              "", "");
  std::string stretches;
  for (double c : sa.after_wait_stretches) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%.2f", stretches.empty() ? "" : " + ", c);
    stretches += b;
  }
  std::printf("%-34s %9s %9.2f %21s  %s\n", "  rank 0 after its wait", "", sa.after_wait_cpu, "",
              ("= " + stretches + " (between its control-plane calls)").c_str());
  if (sa.ok) {
    print_save_row(("save b (" + std::to_string(n_changed) + " tensors changed)").c_str(), sb, "");
    std::printf("%-34s %9.2f %9.2f %21s  %s\n", "  commit (rank 0)", sb.tail_wall, sb.tail_cpu,
                (std::to_string(static_cast<long long>(mib(sb.rss_tail_start))) + " -> " +
                 std::to_string(static_cast<long long>(mib(sb.rss_tail_peak))) + " MiB")
                    .c_str(),
                "");
  }
  for (const auto& v : verbs) {
    std::printf("%-34s %9.2f %9.2f %21s  %s   [%s]\n", v.name.c_str(), v.lib.wall, v.lib.cpu, rss_cell(v.lib).c_str(),
                v.goal.c_str(), v.check.c_str());
    if (v.cli.ran)
      std::printf("%-34s %9.2f %9.2f %21s  exit %d\n", ("  CLI: tessera " + v.name.substr(0, v.name.find(' '))).c_str(),
                  v.cli.wall, v.cli.cpu,
                  ("peak " + std::to_string(static_cast<long long>(mib(v.cli.max_rss))) + " MiB").c_str(), v.cli.code);
  }
  std::printf("catalog.db: %s after a, %s after b (%.0f B per chunk ref); packs %s\n",
              human_bytes(static_cast<double>(catalog_a)).c_str(), human_bytes(static_cast<double>(catalog_b)).c_str(),
              sa.chunks ? static_cast<double>(catalog_a) / static_cast<double>(sa.chunks) : 0.0,
              human_bytes(static_cast<double>(pack_bytes)).c_str());
  std::printf("control plane, save a: %llu keys, %s of keys+values set (%.0f B per chunk ref), at most %llu calls by "
              "one rank (rank 0: %llu); rounds (calls that wait for other ranks): rank 0 %llu, others at most %llu; "
              "%llu keys left after the save\n",
              static_cast<unsigned long long>(sa.keys), human_bytes(static_cast<double>(sa.bytes_set)).c_str(),
              sa.chunks ? static_cast<double>(sa.bytes_set) / static_cast<double>(sa.chunks) : 0.0,
              static_cast<unsigned long long>(sa.max_calls_per_rank), static_cast<unsigned long long>(sa.rank0_calls),
              static_cast<unsigned long long>(sa.rank0_waits), static_cast<unsigned long long>(sa.max_waits_other_rank),
              static_cast<unsigned long long>(sa.keys_left));
  std::printf("ranks' save CPU: rank 0 %.2f s, others median %.3f s, max %.3f s; process peak RSS so far %.0f MiB\n\n",
              sa.rank0_cpu, sa.others_cpu_median, sa.others_cpu_max, mib(max_rss_bytes()));

  std::string vj = "[";
  for (size_t i = 0; i < verbs.size(); ++i) vj += (i ? "," : "") + json_verb(verbs[i]);
  vj += "]";
  char head[1024];
  std::snprintf(head, sizeof head,
                "{\"ranks\":%lld,\"tensors\":%lld,\"chunks_per_tensor\":%lld,\"rows\":%lld,\"layout\":\"%s\","
                "\"chunk_bytes\":%lld,\"load_world\":%lld,\"load_rank\":%lld,\"changed\":%lld,\"inputs_rss\":%llu,",
                static_cast<long long>(R), static_cast<long long>(T), static_cast<long long>(C),
                static_cast<long long>(L), o.grid ? "grid" : "rows", static_cast<long long>(so.chunk_bytes),
                static_cast<long long>(W), static_cast<long long>(w), static_cast<long long>(n_changed),
                static_cast<unsigned long long>(rss_after_sd > rss_before_sd ? rss_after_sd - rss_before_sd : 0));
  char tail[256];
  std::snprintf(tail, sizeof tail,
                ",\"load_bytes_read\":%llu,\"load_chunks_read\":%llu,\"catalog_a\":%llu,\"catalog_b\":%llu,"
                "\"pack_bytes\":%llu,\"ok\":%s}",
                static_cast<unsigned long long>(lres.bytes_read), static_cast<unsigned long long>(lres.chunks_read),
                static_cast<unsigned long long>(catalog_a), static_cast<unsigned long long>(catalog_b),
                static_cast<unsigned long long>(pack_bytes), ok ? "true" : "false");
  json = std::string(head) + "\"save_a\":" + json_save(sa) + ",\"save_b\":" + json_save(sb) + ",\"verbs\":" + vj + tail;
  return ok;
}

// ---- scenario B --------------------------------------------------------------

bool scenario_b(const Options& o, std::string& json) {
  const std::string store_dir = o.dir + "/hist";
  fs::remove_all(store_dir);
  fs::create_directories(o.dir);
  const int64_t T = o.hist_tensors, L = o.hist_rows, H = o.history;
  const int64_t period = std::max<int64_t>(1, std::llround(100.0 / o.changed_pct));
  bool ok = true;

  std::unique_ptr<std::byte[]> buf(new std::byte[static_cast<size_t>(T * L)]);
  std::vector<uint64_t> version(static_cast<size_t>(T), 0);
  for (int64_t i = 0; i < T; ++i) fill(buf.get() + i * L, static_cast<uint64_t>(L), static_cast<uint64_t>(i), 0);
  StateDict sd;
  for (int64_t i = 0; i < T; ++i)
    sd.add_tensor(tensor_name(i), TensorView::contiguous("uint8", 1, buf.get() + i * L, {L, 1}));

  SaveOptions so;
  so.threads = 1;
  so.compression = Compression::kNone;
  so.chunk_bytes = o.hist_chunks == 1 ? L : (L + o.hist_chunks - 1) / o.hist_chunks;

  std::printf("catalog_bench B: %lld checkpoints of %lld tensors uint8 [%lld, 1], chunk_bytes %lld, 1 rank, "
              "threads 1, compression none; every step changes 1 in %lld tensors\n",
              static_cast<long long>(H), static_cast<long long>(T), static_cast<long long>(L),
              static_cast<long long>(so.chunk_bytes), static_cast<long long>(period));
  std::fflush(stdout);

  std::vector<uint64_t> cat_bytes;
  std::vector<double> save_wall, save_cpu;
  uint64_t chunks_first = 0, changed_per_step = 0;
  std::string last;
  try {
    Store store = Store::open(store_dir);
    for (int64_t h = 1; h <= H; ++h) {
      if (h > 1) {
        changed_per_step = 0;
        for (int64_t i = h % period; i < T; i += period) {
          version[static_cast<size_t>(i)] = static_cast<uint64_t>(h);
          fill(buf.get() + i * L, static_cast<uint64_t>(L), static_cast<uint64_t>(i), static_cast<uint64_t>(h));
          ++changed_per_step;
        }
      }
      char name[32];
      std::snprintf(name, sizeof name, "h%05lld", static_cast<long long>(h));
      last = name;
      SaveResult res;
      const bool counted = h == 2 || h == H;  // by callgrind, when run under it
      if (counted) {
        CALLGRIND_START_INSTRUMENTATION;
        CALLGRIND_ZERO_STATS;
      }
      const Measured m = measure([&] { res = save(sd, store, name, so); });
      if (counted) {
        CALLGRIND_DUMP_STATS_AT(h == 2 ? "save #2" : "save #H");
        CALLGRIND_STOP_INSTRUMENTATION;
      }
      if (h == 1) chunks_first = res.chunks;
      save_wall.push_back(m.wall);
      save_cpu.push_back(m.cpu);
      cat_bytes.push_back(file_bytes(store_dir + "/catalog.db"));
      if (h == 1 || h == 2 || h % 50 == 0 || h == H) {
        std::printf("  save #%lld: %.3f s, catalog %s\n", static_cast<long long>(h), m.wall,
                    human_bytes(static_cast<double>(cat_bytes.back())).c_str());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "history save: %s\n", e.what());
    ok = false;
  }

  Verb ls_v{"ls (" + std::to_string(H) + " checkpoints)", "< 1 s"};
  bool load_ok = false;
  Measured load_m;
  if (ok) {
    try {
      ls_v.lib = measure([&] {
        Store store = Store::open_read_only(store_dir);
        const auto cs = store.checkpoints();
        ls_v.lib_ok = static_cast<int64_t>(cs.size()) == H;
        ls_v.check = std::to_string(cs.size()) + " checkpoints";
      });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ls: %s\n", e.what());
      ls_v.lib_ok = false;
    }
    if (!o.cli.empty()) {
      ls_v.cli = run_cli({o.cli, "ls", store_dir});
      if (ls_v.cli.code != 0) ok = false;
    }
    ok = ok && ls_v.lib_ok;
    // The last checkpoint, loaded whole and checked.
    std::unique_ptr<std::byte[]> got(new std::byte[static_cast<size_t>(T * L)]);
    std::memset(got.get(), 0, static_cast<size_t>(T * L));
    StateDict lsd;
    for (int64_t i = 0; i < T; ++i)
      lsd.add_tensor(tensor_name(i), TensorView::contiguous("uint8", 1, got.get() + i * L, {L, 1}));
    try {
      load_m = measure([&] {
        Store store = Store::open_read_only(store_dir);
        LoadOptions lo;
        lo.threads = 1;
        load(lsd, store, last, lo);
      });
      load_ok = std::memcmp(got.get(), buf.get(), static_cast<size_t>(T * L)) == 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "history load: %s\n", e.what());
    }
    if (!load_ok) std::fprintf(stderr, "history load: bytes differ\n");
    ok = ok && load_ok;
  }
  const uint64_t pack_bytes = dir_bytes(store_dir + "/packs");
  if (!o.keep) fs::remove_all(store_dir);

  const size_t n = cat_bytes.size();
  const double first = n ? static_cast<double>(cat_bytes[0]) : 0;
  const double growth = n > 1 ? (static_cast<double>(cat_bytes[n - 1]) - first) / static_cast<double>(n - 1) : 0;
  const double s2 = n > 1 ? save_wall[1] : 0, sh = n ? save_wall[n - 1] : 0;
  const double c2 = n > 1 ? save_cpu[1] : 0, ch = n ? save_cpu[n - 1] : 0;
  // Single saves are noisy on a shared box: also the medians of saves #2..#11
  // and of the last 10.
  auto median = [](std::vector<double> xs) {
    if (xs.empty()) return 0.0;
    std::sort(xs.begin(), xs.end());
    return xs[xs.size() / 2];
  };
  const size_t k = std::min<size_t>(10, n > 1 ? n - 1 : 0);
  const std::vector<double> early_w(save_wall.begin() + (n > 1 ? 1 : 0), save_wall.begin() + (n > 1 ? 1 : 0) + k),
      late_w(save_wall.end() - k, save_wall.end()), early_c(save_cpu.begin() + (n > 1 ? 1 : 0), save_cpu.begin() + (n > 1 ? 1 : 0) + k),
      late_c(save_cpu.end() - k, save_cpu.end());
  const double m2w = median(early_w), mhw = median(late_w), m2c = median(early_c), mhc = median(late_c);

  std::printf("\n%llu chunk refs per checkpoint, %llu tensors changed per step\n",
              static_cast<unsigned long long>(chunks_first), static_cast<unsigned long long>(changed_per_step));
  std::printf("%-34s %14s %14s  %s\n", "case", "value", "", "issue 10 goal");
  if (n) {
    std::printf("%-34s %14s %14s\n", "catalog.db after save #1", human_bytes(first).c_str(), "");
    std::printf("%-34s %14s %13.1f%%  %s\n", "catalog growth per checkpoint", human_bytes(growth).c_str(),
                first > 0 ? 100.0 * growth / first : 0.0, "<= 5% of the first checkpoint's");
    std::printf("%-34s %14s %14s\n", ("catalog.db after save #" + std::to_string(n)).c_str(),
                human_bytes(static_cast<double>(cat_bytes[n - 1])).c_str(), "");
    std::printf("%-34s %14s\n", "packs", human_bytes(static_cast<double>(pack_bytes)).c_str());
    std::printf("%-34s %9.3f wall %9.3f CPU\n", "save #1 (s)", save_wall[0], save_cpu[0]);
  }
  if (n > 1) {
    std::printf("%-34s %9.3f wall %9.3f CPU\n", "save #2 (s)", s2, c2);
    std::printf("%-34s %9.3f wall %9.3f CPU  %s\n", ("save #" + std::to_string(n) + " (s)").c_str(), sh, ch,
                "within 10% of save #2");
    std::printf("%-34s %9.2fx wall %8.2fx CPU\n", ("save #" + std::to_string(n) + " / save #2").c_str(),
                s2 > 0 ? sh / s2 : 0, c2 > 0 ? ch / c2 : 0);
    std::printf("%-34s %9.3f wall %9.3f CPU\n", ("median of saves #2-#" + std::to_string(1 + k)).c_str(), m2w, m2c);
    std::printf("%-34s %9.3f wall %9.3f CPU\n",
                ("median of saves #" + std::to_string(n - k + 1) + "-#" + std::to_string(n)).c_str(), mhw, mhc);
    std::printf("%-34s %9.2fx wall %8.2fx CPU\n", "  ratio of the medians", m2w > 0 ? mhw / m2w : 0,
                m2c > 0 ? mhc / m2c : 0);
  }
  if (ok || ls_v.lib.wall > 0) {
    std::printf("%-34s %9.3f wall %9.3f CPU  < 1 s   [%s]\n", ls_v.name.c_str(), ls_v.lib.wall, ls_v.lib.cpu,
                ls_v.check.c_str());
    if (ls_v.cli.ran)
      std::printf("%-34s %9.3f wall %9.3f CPU  peak %.0f MiB, exit %d\n", "  CLI: tessera ls", ls_v.cli.wall,
                  ls_v.cli.cpu, mib(ls_v.cli.max_rss), ls_v.cli.code);
    std::printf("%-34s %9.3f wall %9.3f CPU  %s\n", ("load " + last + " (all, checked)").c_str(), load_m.wall,
                load_m.cpu, load_ok ? "bytes OK" : "MISMATCH");
  }
  std::printf("\n");

  auto arr_u = [](const std::vector<uint64_t>& xs) {
    std::string s = "[";
    for (size_t i = 0; i < xs.size(); ++i) s += (i ? "," : "") + std::to_string(xs[i]);
    return s + "]";
  };
  auto arr_d = [](const std::vector<double>& xs) {
    std::string s = "[";
    char b[32];
    for (size_t i = 0; i < xs.size(); ++i) {
      std::snprintf(b, sizeof b, "%s%.4f", i ? "," : "", xs[i]);
      s += b;
    }
    return s + "]";
  };
  char head[1024];
  std::snprintf(head, sizeof head,
                "{\"history\":%lld,\"tensors\":%lld,\"rows\":%lld,\"chunk_bytes\":%lld,\"chunks_per_checkpoint\":%llu,"
                "\"changed_per_step\":%llu,\"catalog_first\":%.0f,\"growth_per_checkpoint\":%.1f,\"pack_bytes\":%llu,"
                "\"save2_s\":%.4f,\"saveH_s\":%.4f,\"save2_cpu_s\":%.4f,\"saveH_cpu_s\":%.4f,\"early10_median_s\":%.4f,"
                "\"late10_median_s\":%.4f,\"early10_median_cpu_s\":%.4f,\"late10_median_cpu_s\":%.4f,\"load_last_s\":%.4f,",
                static_cast<long long>(H), static_cast<long long>(T), static_cast<long long>(L),
                static_cast<long long>(so.chunk_bytes), static_cast<unsigned long long>(chunks_first),
                static_cast<unsigned long long>(changed_per_step), first, growth,
                static_cast<unsigned long long>(pack_bytes), s2, sh, c2, ch, m2w, mhw, m2c, mhc, load_m.wall);
  json = std::string(head) + "\"ls\":" + json_verb(ls_v) + ",\"catalog_bytes\":" + arr_u(cat_bytes) +
         ",\"save_s\":" + arr_d(save_wall) + ",\"save_cpu_s\":" + arr_d(save_cpu) + ",\"ok\":" + (ok ? "true" : "false") +
         "}";
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.cli.empty() && access(o.cli.c_str(), X_OK) != 0) usage(("--cli: not an executable: " + o.cli).c_str());
  std::unique_ptr<Launcher> launcher;
  if (!o.cli.empty()) launcher = std::make_unique<Launcher>();  // before anything grows
  g_launcher = launcher.get();
  RssSampler sampler;
  g_rss = &sampler;
  std::printf("catalog_bench: %u cores\n", std::thread::hardware_concurrency());
  bool ok = true;
  std::string ja = "null", jb = "null";
  if (o.run_a) ok = scenario_a(o, ja) && ok;
  if (o.run_b) ok = scenario_b(o, jb) && ok;
  std::printf("{\"bench\":\"catalog\",\"cores\":%u,\"a\":%s,\"b\":%s,\"max_rss\":%llu,\"ok\":%s}\n",
              std::thread::hardware_concurrency(), ja.c_str(), jb.c_str(),
              static_cast<unsigned long long>(max_rss_bytes()), ok ? "true" : "false");
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
