// One rank of the multi-process tests, launched by c10d_test (or torchrun
// --no-python, or scripts/launch.sh) with RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT set. Scenarios:
//
//   save STORE CKPT [FAULT N]                row shards of W, replicated B
//   load STORE CKPT                          column shards; exit 1 on mismatch
//
// FAULTs of a save, on rank N: fail-rank (a shard past the shape), die-rank
// (killed halfway through writing a pack), die-after-decide (rank 0, killed
// inside its catalog transaction right after deciding to commit),
// die-after-commit (rank 0, killed after its commit, before reporting it).
// TESSERA_SAVE_TIMEOUT_MS sets the save's timeout (default 10 s).
//
// W is a deterministic [96, 64] float32 matrix, B a [64] vector held whole
// by every rank (replicas). With TESSERA_DEVICE=cuda the ranks' tensors live
// on the GPU (all ranks share device 0 when there is one GPU).
#include <ATen/ATen.h>

#include <unistd.h>

#include <cstring>
#include <iostream>
#include <optional>

#include "io/fault_injection_env.h"
#include "tessera/c10d.h"
#include "tessera/checkpoint.h"
#include "tessera/torch.h"

namespace {

constexpr int64_t kRows = 96, kCols = 64;

at::Tensor full_w() { return at::arange(kRows * kCols, at::kFloat).reshape({kRows, kCols}).mul_(0.25).sin_(); }
at::Tensor full_b() { return at::arange(kCols, at::kFloat).cos_(); }

// Rows [begin, end) of `n` split `world` ways as torch.chunk does.
std::pair<int64_t, int64_t> split(int64_t n, int64_t world, int64_t rank) {
  int64_t per = (n + world - 1) / world, b = std::min(n, rank * per);
  return {b, std::min(n, b + per)};
}

// An Env under which the process dies (as in a crash) at its first pack
// write; the catalog stays on SQLite's own VFS, whose locks other ranks see.
std::shared_ptr<tessera::Env> dying_at_first_pack_write() {
  auto env = std::make_shared<tessera::io::FaultInjectionEnv>(tessera::posix_env());
  env->let_sqlite_use_os_files(true);
  env->set_rule([](const tessera::io::FaultInjectionEnv::Call& c) -> int {
    if (c.op == tessera::io::FaultInjectionEnv::Op::kAppend) _exit(9);
    return 0;
  });
  return env;
}

// Forwards to another plane; the process dies (as in a crash) right after
// the decision is written (`after` = "decision") or when it would report
// the outcome (`after` = "outcome").
class DyingPlane : public tessera::ControlPlane {
 public:
  DyingPlane(tessera::ControlPlane& inner, std::string after) : inner_(inner), after_("/" + std::move(after)) {}
  int64_t rank() const override { return inner_.rank(); }
  int64_t world_size() const override { return inner_.world_size(); }
  void set(const std::string& key, const std::string& value) override {
    die_at(key);
    inner_.set(key, value);
  }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    return inner_.wait_get(key, timeout);
  }
  int64_t add(const std::string& key, int64_t delta) override { return inner_.add(key, delta); }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    std::string now = inner_.compare_set(key, expected, desired);
    die_at(key);
    return now;
  }
  bool delete_key(const std::string& key) override { return inner_.delete_key(key); }

 private:
  static bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  }
  void die_at(const std::string& key) {
    if (ends_with(key, after_)) _exit(9);
  }
  tessera::ControlPlane& inner_;
  std::string after_;
};

at::Device device() {
  const char* d = std::getenv("TESSERA_DEVICE");
  return d && std::string(d) == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: c10d_worker save|load STORE CKPT [FAULT N]\n";
    return 2;
  }
  const std::string mode = argv[1], store = argv[2], ckpt = argv[3];
  const std::string fault = argc > 5 ? argv[4] : "";
  const int64_t fault_rank = argc > 5 ? std::atoll(argv[5]) : -1;
  try {
    auto env = tessera::JobEnvironment::from_env();
    const int64_t rank = env.rank, world = env.world_size;
    if (mode == "save") {
      auto c10d_store = tessera::connect_store(env, std::chrono::seconds(60));
      auto c10d_plane = tessera::control_plane(c10d_store, rank, world);
      std::optional<DyingPlane> dying;
      if (fault == "die-after-decide" && rank == fault_rank) dying.emplace(*c10d_plane, "decision");
      if (fault == "die-after-commit" && rank == fault_rank) dying.emplace(*c10d_plane, "outcome");
      tessera::ControlPlane& plane = dying ? static_cast<tessera::ControlPlane&>(*dying) : *c10d_plane;
      std::shared_ptr<tessera::Env> dying_env;
      auto [r0, r1] = split(kRows, world, rank);
      at::Tensor w = full_w().slice(0, r0, r1).clone().to(device()), b = full_b().to(device());
      if (fault == "fail-rank" && rank == fault_rank) r0 = kRows - 1;  // a shard that runs past the shape
      if (fault == "die-rank" && rank == fault_rank)                   // killed halfway through writing a pack
        dying_env = dying_at_first_pack_write();
      tessera::StateDict sd;
      tessera::add_shard(sd, "w", w, {kRows, kCols}, {r0, 0});
      tessera::add_shard(sd, "b", b, {kCols}, {0}, rank, world);  // replicated: each writes a share
      sd.add_value("world", world);
      tessera::StoreOptions so;
      so.env = dying_env;  // null: the posix Env
      tessera::Store opened = tessera::Store::open(store, so);  // every rank opens the store itself
      const char* timeout_ms = std::getenv("TESSERA_SAVE_TIMEOUT_MS");
      tessera::SaveOptions o;
      o.chunk_bytes = 1024;
      o.plane = &plane;
      o.timeout = std::chrono::milliseconds(timeout_ms ? std::atoll(timeout_ms) : 10'000);
      auto r = tessera::save(sd, opened, ckpt, o);
      std::cout << "rank " << rank << " wrote " << r.written_bytes << " bytes\n";
      return 0;
    }
    if (mode == "load") {  // no coordination at all: each rank plans its own reads
      auto [c0, c1] = split(kCols, world, rank);
      at::Tensor w = at::zeros({kRows, c1 - c0}, device()), b = at::zeros({kCols}, device());
      tessera::StateDict sd;
      tessera::add_shard(sd, "w", w, {kRows, kCols}, {0, c0});
      tessera::add_tensor(sd, "b", b);
      sd.add_value("world", int64_t{0});
      tessera::load(sd, tessera::Store::open_read_only(store), ckpt);
      bool ok = at::equal(w.cpu(), full_w().slice(1, c0, c1)) && at::equal(b.cpu(), full_b());
      std::cout << "rank " << rank << " load " << (ok ? "exact" : "MISMATCH") << " on " << w.device() << " (saved by "
                << std::get<int64_t>(sd.value("world")) << " ranks)\n";
      return ok ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "rank " << std::getenv("RANK") << ": " << e.what() << "\n";
    return 1;
  }
  return 2;
}
