// dist_bench: distributed save on N ranks, resharded load on M ranks.
//
//   dist_bench DIR [--gib 2] [--save-ranks 4] [--load-ranks 2] [--compression auto|none] [--keep]
//
// (--compression takes any name of tessera/compression.h; run.sh uses these two.)
//
// Builds store_bench's ~GIB of LLM-shaped weights (llm_state.h), splits every
// matrix FSDP-style into row shards over N ranks and saves them with the
// distributed tessera::save: each rank is a thread with its own ControlPlane
// from in_process_control_planes(N) and SaveOptions.threads = max(1, cores / N),
// and all call save concurrently into DIR/store. The save is timed from the
// start until every rank has returned (rank 0 returns after the commit).
// Then the packs are evicted from the page cache and M ranks (threads, each
// with LoadOptions.threads = max(1, cores / M)) each open the store read-only
// and load their column shard of every matrix, as a job restarted with a
// different layout would; timed until every rank has returned. Every loaded
// byte is compared with the saved one.
//
// Ranks are threads of one process here: they share the page cache, the
// memory bus and the cores, but not the control plane's keys or the stores'
// handles. Multi-process runs (c10d TCPStore, scripts/launch.sh, torchrun)
// are exercised by the tests, not timed here.
//
// Prints a table and one JSON line (for bench/run.sh). Exits 1 when a rank
// throws or any loaded byte differs from the saved one.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "llm_state.h"
#include "page_cache.h"
#include "tessera/checkpoint.h"
#include "tessera/compression.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/store.h"

using namespace tessera;
using namespace tessera::bench;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string dir;
  double gib = 2.0;
  int64_t save_ranks = 4;
  int64_t load_ranks = 2;
  Compression compression = Compression::kAuto;
  bool keep = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "dist_bench: %s\nusage: dist_bench DIR [--gib 2] [--save-ranks 4] [--load-ranks 2] "
               "[--compression C] [--keep]\n",
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
    if (a == "--gib") o.gib = std::atof(value().c_str());
    else if (a == "--save-ranks") o.save_ranks = std::atol(value().c_str());
    else if (a == "--load-ranks") o.load_ranks = std::atol(value().c_str());
    else if (a == "--compression") {
      try {
        o.compression = parse_compression(value());
      } catch (const InvalidArgument& e) {
        usage(e.what());
      }
    } else if (a == "--keep") o.keep = true;
    else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else if (o.dir.empty()) o.dir = a;
    else usage("more than one DIR");
  }
  if (o.dir.empty()) usage("DIR is required");
  if (o.gib <= 0) usage("--gib must be positive");
  // Every matrix has at least 2048 rows and columns; keep every shard non-empty.
  if (o.save_ranks < 1 || o.save_ranks > 2048) usage("--save-ranks must be in 1..2048");
  if (o.load_ranks < 1 || o.load_ranks > 2048) usage("--load-ranks must be in 1..2048");
  return o;
}

// [begin, end) of part `r` of `n` near-equal parts of `extent` (the first
// parts are the shorter ones when it does not divide evenly).
std::pair<int64_t, int64_t> split(int64_t extent, int64_t n, int64_t r) {
  return {extent * r / n, extent * (r + 1) / n};
}

// Runs fn(rank) on `world` threads and waits for all; records each rank's
// seconds from `start` to its return, and its error ("" if none).
template <class Fn>
void run_ranks(int64_t world, const Stopwatch& start, std::vector<double>& seconds,
               std::vector<std::string>& errors, Fn fn) {
  seconds.assign(static_cast<size_t>(world), 0.0);
  errors.assign(static_cast<size_t>(world), "");
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
      seconds[static_cast<size_t>(r)] = start.seconds();
    });
  for (auto& t : threads) t.join();
}

bool report_errors(const char* phase, const std::vector<std::string>& errors) {
  bool any = false;
  for (size_t r = 0; r < errors.size(); ++r)
    if (!errors[r].empty()) {
      std::fprintf(stderr, "%s: rank %zu failed: %s\n", phase, r, errors[r].c_str());
      any = true;
    }
  return any;
}

double gibps(uint64_t bytes, double s) { return s > 0 ? static_cast<double>(bytes) / kGiB / s : 0; }

std::string json_array(const std::vector<double>& xs) {
  std::string out = "[";
  for (size_t i = 0; i < xs.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.4f", i ? "," : "", xs[i]);
    out += buf;
  }
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string store_dir = o.dir + "/store";
  fs::remove_all(store_dir);
  fs::create_directories(o.dir);
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t save_threads = std::max<size_t>(1, cores / static_cast<size_t>(o.save_ranks));
  const size_t load_threads = std::max<size_t>(1, cores / static_cast<size_t>(o.load_ranks));
  const std::string ckpt = "bench";

  std::vector<Tensor> model = plan_model(o.gib * kGiB);
  const uint64_t logical = logical_bytes(model);
  Stopwatch gen_sw;
  generate(model, 0);
  const double gen_s = gen_sw.seconds();

  // Each save rank's state dict: rows [r0, r1) of every matrix, a contiguous
  // slab of the full buffer placed with as_shard (FSDP's dim-0 sharding).
  std::vector<StateDict> save_sd(static_cast<size_t>(o.save_ranks));
  for (int64_t r = 0; r < o.save_ranks; ++r)
    for (auto& t : model) {
      const auto [r0, r1] = split(t.rows, o.save_ranks, r);
      std::byte* p = t.data.get() + static_cast<size_t>(r0 * t.cols) * t.elem;
      save_sd[static_cast<size_t>(r)].add_tensor(
          t.name, TensorView::contiguous(t.dtype, t.elem, p, {r1 - r0, t.cols}).as_shard({t.rows, t.cols}, {r0, 0}));
    }

  auto planes = in_process_control_planes(o.save_ranks);
  std::vector<SaveResult> saved(static_cast<size_t>(o.save_ranks));
  std::vector<double> save_rank_s;
  std::vector<std::string> errors;
  Stopwatch save_sw;
  run_ranks(o.save_ranks, save_sw, save_rank_s, errors, [&](int64_t r) {
    SaveOptions so;
    so.threads = save_threads;
    so.compression = o.compression;
    so.plane = planes[r].get();
    Store store = Store::open(store_dir);  // every rank opens the store itself
    saved[static_cast<size_t>(r)] = save(save_sd[static_cast<size_t>(r)], store, ckpt, so);
  });
  const double save_s = save_sw.seconds();
  if (report_errors("save", errors)) {
    if (!o.keep) fs::remove_all(store_dir);
    return 1;
  }
  SaveResult total;
  for (const auto& s : saved) {
    total.logical_bytes += s.logical_bytes;
    total.written_bytes += s.written_bytes;
    total.chunks += s.chunks;
    total.chunks_written += s.chunks_written;
    total.packs += s.packs;
  }

  // Destination buffers (full tensors, pre-faulted); each load rank fills
  // its column shard, a strided view into them.
  auto bufs = allocate_targets(model, 0);
  std::vector<StateDict> load_sd(static_cast<size_t>(o.load_ranks));
  uint64_t needed = 0;
  for (int64_t r = 0; r < o.load_ranks; ++r)
    for (size_t i = 0; i < model.size(); ++i) {
      const Tensor& t = model[i];
      const auto [c0, c1] = split(t.cols, o.load_ranks, r);
      TensorView v;
      v.dtype = t.dtype;
      v.elem_size = t.elem;
      v.data = bufs[i].get() + static_cast<size_t>(c0) * t.elem;
      v.sizes = {t.rows, c1 - c0};
      v.strides = {t.cols, 1};
      load_sd[static_cast<size_t>(r)].add_tensor(t.name, v.as_shard({t.rows, t.cols}, {0, c0}));
      needed += static_cast<uint64_t>(t.rows * (c1 - c0)) * t.elem;
    }

  const auto packs = pack_files(store_dir);
  const std::string drop_method = drop_page_cache(packs);
  const uint64_t cached_before = cached_bytes(packs);
  std::vector<LoadResult> loaded(static_cast<size_t>(o.load_ranks));
  std::vector<double> load_rank_s;
  Stopwatch load_sw;
  run_ranks(o.load_ranks, load_sw, load_rank_s, errors, [&](int64_t r) {
    Store store = Store::open_read_only(store_dir);  // each rank opens the store itself
    LoadOptions lo;
    lo.threads = load_threads;
    loaded[static_cast<size_t>(r)] = load(load_sd[static_cast<size_t>(r)], store, ckpt, lo);
  });
  const double load_s = load_sw.seconds();
  const bool load_failed = report_errors("load", errors);
  uint64_t bytes_read = 0, chunks_read = 0;
  for (const auto& l : loaded) {
    bytes_read += l.bytes_read;
    chunks_read += l.chunks_read;
  }
  const bool ok = !load_failed && needed == logical && all_equal(model, bufs);
  if (!o.keep) fs::remove_all(store_dir);

  const std::string comp_name = to_string(o.compression);
  const char* comp = comp_name.c_str();
  auto minmax = [](const std::vector<double>& xs) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f-%.2f", *std::min_element(xs.begin(), xs.end()),
                  *std::max_element(xs.begin(), xs.end()));
    return std::string(buf);
  };
  std::printf("dist_bench: %zu tensors, %s logical (bf16 + fp32), compression %s, %zu cores, "
              "generated in %.2f s\n",
              model.size(), human_bytes(static_cast<double>(logical)).c_str(), comp, cores, gen_s);
  std::printf("save: %lld ranks (threads of this process) x %zu threads, row shards; "
              "load: %lld ranks x %zu threads, column shards\n",
              static_cast<long long>(o.save_ranks), save_threads, static_cast<long long>(o.load_ranks),
              load_threads);
  std::printf("%llu chunk pieces in %llu packs; page cache dropped with %s; pack bytes still cached before "
              "the load: %s\n",
              static_cast<unsigned long long>(total.chunks), static_cast<unsigned long long>(total.packs),
              drop_method.c_str(), human_bytes(static_cast<double>(cached_before)).c_str());
  std::printf("%-32s %8s %14s %10s %12s %12s %8s\n", "case", "seconds", "ranks done (s)", "GiB/s", "bytes read",
              "bytes needed", "check");
  std::printf("%-32s %8.2f %14s %10.2f %12s %12s %8s\n",
              ("save, " + std::to_string(o.save_ranks) + " ranks (logical bytes)").c_str(), save_s,
              minmax(save_rank_s).c_str(), gibps(logical, save_s),
              ("w " + human_bytes(static_cast<double>(total.written_bytes))).c_str(), "", "");
  std::printf("%-32s %8.2f %14s %10.2f %12s %12s %8s\n",
              ("load, " + std::to_string(o.load_ranks) + " ranks (column shards)").c_str(), load_s,
              minmax(load_rank_s).c_str(), gibps(needed, load_s),
              human_bytes(static_cast<double>(bytes_read)).c_str(), human_bytes(static_cast<double>(needed)).c_str(),
              ok ? "OK" : "MISMATCH");

  std::printf("{\"bench\":\"dist\",\"compression\":\"%s\",\"cores\":%zu,\"save_ranks\":%lld,\"save_threads\":%zu,"
              "\"load_ranks\":%lld,\"load_threads\":%zu,\"tensors\":%zu,\"logical_bytes\":%llu,"
              "\"written_bytes\":%llu,\"chunks\":%llu,\"chunks_written\":%llu,\"packs\":%llu,"
              "\"save_s\":%.4f,\"save_gibps\":%.4f,\"save_rank_s\":%s,\"drop\":\"%s\","
              "\"load\":{\"s\":%.4f,\"gibps\":%.4f,\"bytes_read\":%llu,\"bytes_needed\":%llu,\"chunks_read\":%llu,"
              "\"cached_before\":%llu,\"rank_s\":%s},\"ok\":%s}\n",
              comp, cores, static_cast<long long>(o.save_ranks), save_threads, static_cast<long long>(o.load_ranks),
              load_threads, model.size(), static_cast<unsigned long long>(logical),
              static_cast<unsigned long long>(total.written_bytes), static_cast<unsigned long long>(total.chunks),
              static_cast<unsigned long long>(total.chunks_written), static_cast<unsigned long long>(total.packs),
              save_s, gibps(logical, save_s), json_array(save_rank_s).c_str(), drop_method.c_str(), load_s,
              gibps(needed, load_s), static_cast<unsigned long long>(bytes_read),
              static_cast<unsigned long long>(needed), static_cast<unsigned long long>(chunks_read),
              static_cast<unsigned long long>(cached_before), json_array(load_rank_s).c_str(),
              ok ? "true" : "false");
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
