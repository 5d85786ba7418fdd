// store_bench: end-to-end save and load throughput of a tessera store.
//
//   store_bench DIR [--gib 2] [--threads N] [--compression auto|none] [--keep]
//
// (--compression takes any name of tessera/compression.h; run.sh uses these two.)
//
// Builds ~GIB of LLM-shaped weights in memory (bf16 matrices plus fp32
// master copies), saves them into a fresh store DIR/store, evicts the packs
// from the page cache, loads everything back and compares bytes. Then loads
// column halves of every matrix (two "ranks" of a tensor-parallel reshard)
// with checksum verification on and off, reporting bytes read against bytes
// needed. Prints a table and one JSON line (for bench/run.sh). Exits 1 when
// any loaded byte differs from the saved one.
#include <cstdio>
#include <cstdlib>
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
#include "tessera/error.h"
#include "tessera/store.h"

using namespace tessera;
using namespace tessera::bench;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string dir;
  double gib = 2.0;
  size_t threads = 0;  // 0 = one per core, as the library defaults
  Compression compression = Compression::kAuto;
  bool keep = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "store_bench: %s\nusage: store_bench DIR [--gib 2] [--threads N] "
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
    else if (a == "--threads") o.threads = static_cast<size_t>(std::atol(value().c_str()));
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
  return o;
}

struct LoadRun {
  double seconds = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_needed = 0;
  uint64_t cached_before = 0;  // pack bytes still in the page cache when the load began
  bool ok = false;
};

// Loads whole tensors after evicting the packs.
LoadRun load_whole(const std::vector<Tensor>& model, std::vector<std::unique_ptr<std::byte[]>>& bufs,
                   const std::string& store_dir, const Options& o, std::string& drop_method) {
  clear_targets(model, bufs, o.threads);
  StateDict sd;
  for (size_t i = 0; i < model.size(); ++i)
    sd.add_tensor(model[i].name,
                  TensorView::contiguous(model[i].dtype, model[i].elem, bufs[i].get(), {model[i].rows, model[i].cols}));
  const auto packs = pack_files(store_dir);
  drop_method = drop_page_cache(packs);
  LoadRun r;
  r.cached_before = cached_bytes(packs);
  Stopwatch sw;
  Store store = Store::open_read_only(store_dir);  // a restarted job opens the store afresh
  LoadOptions lo;
  lo.threads = o.threads;
  LoadResult res = load(sd, store, "bench", lo);
  r.seconds = sw.seconds();
  r.bytes_read = res.bytes_read;
  for (const auto& t : model) r.bytes_needed += t.bytes();
  r.ok = all_equal(model, bufs);
  return r;
}

// Loads the left, then the right column half of every matrix, as the two
// ranks of a 2-way tensor-parallel job would: each half is a strided view
// into the full destination buffer, placed with as_shard.
LoadRun load_column_halves(const std::vector<Tensor>& model, std::vector<std::unique_ptr<std::byte[]>>& bufs,
                           const std::string& store_dir, const Options& o, bool verify) {
  clear_targets(model, bufs, o.threads);
  const auto packs = pack_files(store_dir);
  drop_page_cache(packs);
  LoadRun r;
  r.cached_before = cached_bytes(packs);
  Stopwatch sw;
  Store store = Store::open_read_only(store_dir);
  for (int half = 0; half < 2; ++half) {
    StateDict sd;
    for (size_t i = 0; i < model.size(); ++i) {
      const Tensor& t = model[i];
      const int64_t width = t.cols / 2, col0 = half * width;
      TensorView v;
      v.dtype = t.dtype;
      v.elem_size = t.elem;
      v.data = bufs[i].get() + static_cast<size_t>(col0) * t.elem;
      v.sizes = {t.rows, width};
      v.strides = {t.cols, 1};
      sd.add_tensor(t.name, v.as_shard({t.rows, t.cols}, {0, col0}));
      r.bytes_needed += static_cast<uint64_t>(t.rows * width) * t.elem;
    }
    LoadOptions lo;
    lo.threads = o.threads;
    lo.verify = verify;
    r.bytes_read += load(sd, store, "bench", lo).bytes_read;
  }
  r.seconds = sw.seconds();
  r.ok = all_equal(model, bufs);
  return r;
}

double gibps(uint64_t bytes, double s) { return s > 0 ? static_cast<double>(bytes) / kGiB / s : 0; }

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string store_dir = o.dir + "/store";
  fs::remove_all(store_dir);
  fs::create_directories(o.dir);

  std::vector<Tensor> model = plan_model(o.gib * kGiB);
  const uint64_t logical = logical_bytes(model);
  Stopwatch gen_sw;
  generate(model, o.threads);
  const double gen_s = gen_sw.seconds();

  StateDict sd;
  for (auto& t : model)
    sd.add_tensor(t.name, TensorView::contiguous(t.dtype, t.elem, t.data.get(), {t.rows, t.cols}));
  SaveOptions so;
  so.threads = o.threads;
  so.compression = o.compression;
  Stopwatch save_sw;
  SaveResult saved;
  {
    Store store = Store::open(store_dir);
    saved = save(sd, store, "bench", so);
  }
  const double save_s = save_sw.seconds();

  auto bufs = allocate_targets(model, o.threads);
  std::string drop_method;
  const LoadRun whole = load_whole(model, bufs, store_dir, o, drop_method);
  const LoadRun halves_v = load_column_halves(model, bufs, store_dir, o, true);
  const LoadRun halves_nv = load_column_halves(model, bufs, store_dir, o, false);
  const bool ok = whole.ok && halves_v.ok && halves_nv.ok;
  if (!o.keep) fs::remove_all(store_dir);

  const std::string comp_name = to_string(o.compression);
  const char* comp = comp_name.c_str();
  const unsigned threads = o.threads ? static_cast<unsigned>(o.threads) : std::thread::hardware_concurrency();
  std::printf("store_bench: %zu tensors, %s logical (bf16 + fp32), compression %s, %u threads, "
              "generated in %.2f s\n",
              model.size(), human_bytes(static_cast<double>(logical)).c_str(), comp, threads, gen_s);
  std::printf("page cache dropped with %s; pack bytes still cached before each load: %s / %s / %s\n",
              drop_method.c_str(), human_bytes(static_cast<double>(whole.cached_before)).c_str(),
              human_bytes(static_cast<double>(halves_v.cached_before)).c_str(),
              human_bytes(static_cast<double>(halves_nv.cached_before)).c_str());
  std::printf("%-26s %8s %10s %12s %12s %8s\n", "case", "seconds", "GiB/s", "bytes read", "bytes needed", "check");
  std::printf("%-26s %8.2f %10.2f %12s %12s %8s\n", "save (logical bytes)", save_s, gibps(logical, save_s),
              ("w " + human_bytes(static_cast<double>(saved.written_bytes))).c_str(), "", "");
  auto row = [](const char* name, const LoadRun& r) {
    std::printf("%-26s %8.2f %10.2f %12s %12s %8s\n", name, r.seconds, gibps(r.bytes_needed, r.seconds),
                human_bytes(static_cast<double>(r.bytes_read)).c_str(),
                human_bytes(static_cast<double>(r.bytes_needed)).c_str(), r.ok ? "OK" : "MISMATCH");
  };
  row("load (all)", whole);
  row("load col halves, verify", halves_v);
  row("load col halves, no verify", halves_nv);

  auto run_json = [](const LoadRun& r) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"s\":%.4f,\"gibps\":%.4f,\"bytes_read\":%llu,\"bytes_needed\":%llu,\"cached_before\":%llu,"
                  "\"ok\":%s}",
                  r.seconds, gibps(r.bytes_needed, r.seconds), static_cast<unsigned long long>(r.bytes_read),
                  static_cast<unsigned long long>(r.bytes_needed), static_cast<unsigned long long>(r.cached_before),
                  r.ok ? "true" : "false");
    return std::string(buf);
  };
  std::printf("{\"bench\":\"store\",\"compression\":\"%s\",\"threads\":%u,\"tensors\":%zu,"
              "\"logical_bytes\":%llu,\"written_bytes\":%llu,\"chunks\":%llu,\"packs\":%llu,"
              "\"save_s\":%.4f,\"save_gibps\":%.4f,\"drop\":\"%s\",\"load\":%s,"
              "\"reshard_verify\":%s,\"reshard_noverify\":%s,\"ok\":%s}\n",
              comp, threads, model.size(), static_cast<unsigned long long>(logical),
              static_cast<unsigned long long>(saved.written_bytes), static_cast<unsigned long long>(saved.chunks),
              static_cast<unsigned long long>(saved.packs), save_s, gibps(logical, save_s), drop_method.c_str(),
              run_json(whole).c_str(), run_json(halves_v).c_str(), run_json(halves_nv).c_str(),
              ok ? "true" : "false");
  std::printf("%s\n", ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}
