// tessera's side of the GPU benchmark (bench/gpu_vs_dcp.sh runs it next to
// DCP): the tensors listed in a manifest written by bench/gpu_dcp_side.py
// (names, dtypes, shapes, devices of a SmolLM2-1.7B-shaped model with AdamW
// state), built directly on the GPU with random values, then
//
//   gpu_bench MANIFEST STORE_ROOT save COMPRESSION
//       two async saves (AsyncSaver) into STORE_ROOT/a and STORE_ROOT/b: the
//       first pins the staging pool, the second reuses it. Prints the time
//       save() blocked and the time to the commit, for each.
//   gpu_bench MANIFEST STORE_ROOT load
//       evicts STORE_ROOT/a's packs from the page cache, loads the checkpoint
//       into fresh GPU tensors, and checks every tensor bit-exact against
//       the values the save generated (same seeds).
//
// Each run prints "RESULT {json}" lines, including the process's peak
// resident memory (VmHWM), which includes the pinned staging.
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "page_cache.h"
#include "tessera/async.h"
#include "tessera/checkpoint.h"
#include "tessera/compression.h"
#include "tessera/torch.h"

using namespace tessera;

namespace {

struct Spec {
  std::string name, dtype, device;
  std::vector<int64_t> shape;
};

// One line per tensor: name TAB dtype TAB dim,dim,... TAB device.
std::vector<Spec> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read manifest " + path);
  std::vector<Spec> specs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Spec s;
    std::string dims;
    std::getline(fields, s.name, '\t');
    std::getline(fields, s.dtype, '\t');
    std::getline(fields, dims, '\t');
    std::getline(fields, s.device, '\t');
    std::istringstream d(dims);
    for (std::string x; std::getline(d, x, ',');)
      if (!x.empty()) s.shape.push_back(std::stoll(x));
    specs.push_back(std::move(s));
  }
  return specs;
}

// Values shaped like a model after one AdamW step (so codecs see realistic
// exponents): weights ~N(0, 0.02), first moments ~1e-3, second moments ~1e-6.
at::Tensor make_tensor(const Spec& s, uint64_t seed) {
  at::manual_seed(seed);
  auto on = at::TensorOptions().dtype(scalar_type_from_name(s.dtype)).device(s.device == "cpu" ? at::kCPU : at::kCUDA);
  if (s.shape.empty()) return at::ones({}, on);
  at::Tensor t = at::randn(s.shape, on.dtype(at::kFloat));
  if (s.name.find("exp_avg_sq") != std::string::npos) t = t.square() * 1e-6;
  else if (s.name.find("exp_avg") != std::string::npos) t = t * 1e-3;
  else t = t * 0.02;
  return t.to(on.dtype());
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void sync_device() {
  if (at::hasCUDA()) at::accelerator::synchronizeDevice(0);
}

uint64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gpu_bench MANIFEST STORE_ROOT save auto|none | load\n");
    return 2;
  }
  const std::string manifest = argv[1], root = argv[2], mode = argv[3];
  std::vector<Spec> specs = read_manifest(manifest);
  std::vector<at::Tensor> tensors;
  uint64_t state_bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    tensors.push_back(make_tensor(specs[i], 1000 + i));
    state_bytes += tensors.back().numel() * tensors.back().element_size();
  }
  sync_device();
  const uint64_t rss_before = peak_rss_bytes();

  if (mode == "save") {
    SaveOptions o;
    o.compression = parse_compression(argc > 4 ? argv[4] : "auto");
    AsyncSaver saver;
    for (const char* name : {"a", "b"}) {
      StateDict sd;
      for (size_t i = 0; i < specs.size(); ++i) add_tensor(sd, specs[i].name, tensors[i]);
      sync_device();
      const double t0 = now();
      Store store = Store::open(root + "/" + name);
      SaveHandle h = saver.save(sd, store, "ckpt", o);
      SaveResult r = h.wait();
      const double total = now() - t0;
      std::printf(
          "RESULT {\"phase\":\"save\",\"store\":\"%s\",\"compression\":\"%s\",\"blocked_s\":%.4f,\"total_s\":%.4f,"
          "\"state_bytes\":%llu,\"written_bytes\":%llu,\"staging_bytes\":%llu}\n",
          name, argc > 4 ? argv[4] : "auto", h.blocked_seconds(), total, (unsigned long long)state_bytes,
          (unsigned long long)r.written_bytes, (unsigned long long)saver.staging_bytes());
      std::fflush(stdout);
    }
  } else if (mode == "load") {
    std::vector<at::Tensor> targets;
    StateDict sd;
    for (size_t i = 0; i < specs.size(); ++i) {
      targets.push_back(at::zeros_like(tensors[i]));
      add_tensor(sd, specs[i].name, targets.back());
    }
    sync_device();
    const std::string store_dir = root + "/a";
    const std::string method = bench::drop_page_cache(bench::pack_files(store_dir));
    const uint64_t cached = bench::cached_bytes(bench::pack_files(store_dir));
    const double t0 = now();
    Store store = Store::open_read_only(store_dir);
    LoadResult r = load(sd, store, "ckpt");
    sync_device();
    const double total = now() - t0;
    size_t bad = 0;
    for (size_t i = 0; i < specs.size(); ++i)
      if (!at::equal(targets[i], tensors[i])) {
        if (bad++ < 3) std::fprintf(stderr, "MISMATCH %s\n", specs[i].name.c_str());
      }
    std::printf(
        "RESULT {\"phase\":\"load\",\"total_s\":%.4f,\"state_bytes\":%llu,\"bytes_read\":%llu,\"bit_exact\":%s,"
        "\"evicted_by\":\"%s\",\"cached_before_load\":%llu,\"peak_rss_bytes\":%llu,\"rss_before_bytes\":%llu}\n",
        total, (unsigned long long)state_bytes, (unsigned long long)r.bytes_read, bad == 0 ? "true" : "false",
        method.c_str(), (unsigned long long)cached, (unsigned long long)peak_rss_bytes(),
        (unsigned long long)rss_before);
    return bad == 0 ? 0 : 1;
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("RESULT {\"phase\":\"save_memory\",\"peak_rss_bytes\":%llu,\"rss_before_bytes\":%llu}\n",
              (unsigned long long)peak_rss_bytes(), (unsigned long long)rss_before);
  return 0;
}
