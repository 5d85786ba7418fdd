// Replicated entries loaded once per group and broadcast (LoadOptions::replicas,
// tessera/replicas.h): ranks are threads of this process, each with its own
// ProcessGroupGloo over one HashStore and tessera::collective() over it.
// Tensors are on the GPU where one is present (Gloo moves CUDA tensors too;
// the NCCL backend takes the same code path on several GPUs).
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>
#include <thread>
#include <typeinfo>

#include "tessera/c10d.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "tessera/torch.h"
#include "test_util.h"

#include <doctest/doctest.h>  // after the torch headers (see toolchain.md)

using namespace tessera;
using tessera::test::TempDir;
using tessera::test::has;

namespace {

at::Device device() { return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

// Runs fn(rank, group) on `world` threads, group a Collective over a Gloo
// process group; returns each rank's error text ("" if none).
std::vector<std::string> run_group(int world, const std::function<void(int, Collective&)>& fn) {
  // c10d's flight recorder (one per process) races when several process
  // groups enqueue from different threads at once: it crashed about one run
  // in 25 here. Real jobs have one rank per process; these threads do not.
  ::setenv("TORCH_FR_BUFFER_SIZE", "0", 1);
  static int round = 0;
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::string prefix = "round" + std::to_string(round++);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto options = c10d::ProcessGroupGloo::Options::create();
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        options->timeout = std::chrono::seconds(60);
        c10d::ProcessGroupGloo group(c10::make_intrusive<c10d::PrefixStore>(prefix, store), r, world, options);
        fn(r, *collective(group));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

LoadOptions replicated_over(Collective& group) {
  LoadOptions o;
  o.replicas = &group;
  return o;
}

struct Saved {
  std::map<std::string, at::Tensor> tensors;  // CPU originals
  uint64_t replicated_bytes = 0;
};

Saved save_fixture(const std::string& dir) {
  at::manual_seed(11);
  Saved s;
  s.tensors["embed"] = at::randn({101, 64});
  s.tensors["bias"] = at::randn({33}).to(at::kBFloat16);
  s.tensors["tiny"] = at::randn({2});  // fewer rows than ranks
  s.tensors["scalar"] = at::randn({});
  s.tensors["wt"] = at::randn({40, 24});  // loaded into a transposed (non-contiguous) target
  s.tensors["shard"] = at::randn({30, 8});  // not replicated: each rank loads its own rows
  StateDict sd;
  for (const auto& [name, t] : s.tensors) add_tensor(sd, name, t);
  sd.add_value("step", int64_t{17});
  SaveOptions o;
  o.compression = Compression::kNone;  // raw chunks: reads with verify off are exactly the bytes needed
  Store store = Store::open(dir);
  save(sd, store, "c", o);
  for (const auto& name : {"embed", "bias", "tiny", "scalar", "wt"})
    s.replicated_bytes += s.tensors[name].numel() * s.tensors[name].element_size();
  return s;
}

// The fixture's state as rank `rank` of `world` asks for it: the replicated
// entries ("wt" into a transposed, non-contiguous target, which the collective
// holds through a temporary), its own rows of "shard", and "step". Fills `t`
// with the targets, zeros, on device().
StateDict fixture_state(const Saved& saved, int rank, int world, std::map<std::string, at::Tensor>& t) {
  auto on = at::TensorOptions().device(device());
  StateDict sd;
  for (const auto& name : {"embed", "bias", "tiny", "scalar"}) {
    const at::Tensor& s = saved.tensors.at(name);
    t[name] = at::zeros_like(s, on);
    add_shard(sd, name, t[name], s.sizes().vec(), Shape(s.dim(), 0), rank, world);
  }
  t["wt"] = at::zeros({24, 40}, on).t();  // non-contiguous
  add_shard(sd, "wt", t["wt"], {40, 24}, {0, 0}, rank, world);
  t["shard"] = at::zeros({10, 8}, on);
  add_shard(sd, "shard", t["shard"], {30, 8}, {rank * 10, 0});
  sd.add_value("step", int64_t{0});
  return sd;
}

// How many of fixture_state's 7 entries hold the saved values.
int entries_equal(const Saved& saved, int rank, const std::map<std::string, at::Tensor>& t, const StateDict& sd) {
  int ok = std::get<int64_t>(sd.value("step")) == 17;
  for (const auto& name : {"embed", "bias", "tiny", "scalar", "wt"})
    ok += at::equal(t.at(name).cpu(), saved.tensors.at(name));
  ok += at::equal(t.at("shard").cpu(), saved.tensors.at("shard").narrow(0, rank * 10, 10));
  return ok;
}

}  // namespace

TEST_CASE("replicated entries: each byte read once across the group, every rank gets every byte") {
  TempDir dir("replicated");
  Saved saved = save_fixture(dir.path());
  const int world = 3;
  std::vector<uint64_t> bytes_read(world);
  std::vector<int> equal(world, 0);
  auto errors = run_group(world, [&](int rank, Collective& group) {
    std::map<std::string, at::Tensor> t;
    StateDict sd = fixture_state(saved, rank, world, t);
    LoadOptions o;
    o.verify = false;
    o.replicas = &group;
    LoadResult r = load(sd, Store::open_read_only(dir.path()), "c", o);
    bytes_read[rank] = r.bytes_read;
    CHECK(r.missing_keys.empty());
    CHECK(r.unexpected_keys.empty());
    equal[rank] = entries_equal(saved, rank, t, sd);
  });
  for (int r = 0; r < world; ++r) {
    CHECK_MESSAGE(errors[r].empty(), errors[r]);
    CHECK(equal[r] == 7);
  }
  const uint64_t shard_bytes = 30 * 8 * 4;
  uint64_t total = 0;
  for (uint64_t b : bytes_read) total += b;
  CHECK(total == saved.replicated_bytes + shard_bytes);  // not world x the replicated bytes
  for (uint64_t b : bytes_read) CHECK(b < saved.replicated_bytes);  // nobody read everything
}

TEST_CASE("ranks asking for different replicated entries all fail, naming the mismatch, without hanging") {
  TempDir dir("replicated");
  Saved saved = save_fixture(dir.path());
  auto errors = run_group(2, [&](int rank, Collective& group) {
    StateDict sd;
    at::Tensor e = at::zeros({101, 64});
    add_shard(sd, "embed", e, {101, 64}, {0, 0}, rank, 2);
    at::Tensor b = at::zeros({33}, at::TensorOptions().dtype(at::kBFloat16));
    if (rank == 0) add_shard(sd, "bias", b, {33}, {0}, rank, 2);
    LoadOptions o;
    o.strict = false;
    o.replicas = &group;
    load(sd, Store::open_read_only(dir.path()), "c", o);
  });
  for (const auto& e : errors) {
    CHECK(has(e, "replicated entries"));
    CHECK(has(e, "every rank of the replica group"));
  }
}

TEST_CASE("a rank whose read fails: it throws its own error, the others name it and throw its class") {
  TempDir dir("replicated");
  Saved saved = save_fixture(dir.path());
  auto errors = run_group(3, [&](int rank, Collective& group) {
    StateDict sd;
    at::Tensor e = at::zeros({101, 64});
    add_shard(sd, "embed", e, {101, 64}, {0, 0}, rank, 3);
    at::Tensor s = rank == 1 ? at::zeros({10, 9}) : at::zeros({10, 8});  // rank 1: wrong shape
    add_shard(sd, "shard", s, rank == 1 ? Shape{30, 9} : Shape{30, 8}, {rank * 10, 0});
    try {
      load(sd, Store::open_read_only(dir.path()), "c", replicated_over(group));
    } catch (const InvalidArgument& e) {  // the class, exactly: every rank throws rank 1's
      if (typeid(e) != typeid(InvalidArgument)) throw;
      throw std::runtime_error(std::string("InvalidArgument: ") + e.what());
    }
  });
  CHECK(has(errors[1], "InvalidArgument: "));
  CHECK(has(errors[1], "tensor 'shard'"));
  CHECK(has(errors[1], "saved shape"));
  for (int r : {0, 2}) {
    CHECK(has(errors[r], "InvalidArgument: "));
    CHECK(has(errors[r], "failed on rank(s) 1"));
  }
}

TEST_CASE("a replica index or count that does not match the group is refused on every rank") {
  TempDir dir("replicated");
  Saved saved = save_fixture(dir.path());
  auto errors = run_group(2, [&](int rank, Collective& group) {
    StateDict sd;
    at::Tensor e = at::zeros({101, 64});
    add_shard(sd, "embed", e, {101, 64}, {0, 0}, rank, 3);  // 3 replicas, group of 2
    load(sd, Store::open_read_only(dir.path()), "c", replicated_over(group));
  });
  CHECK(has(errors[0], "replica 0 of 3, but this is rank 0 of 2"));
  CHECK(has(errors[1], "replica 1 of 3, but this is rank 1 of 2"));
}

TEST_CASE("replicated rows are cut at chunk edges: the group reads each chunk once") {
  TempDir dir("replicated");
  // [100, 4] float32 in chunks of 13 rows (a 256-byte target halves dimension
  // 0 down to 13): an even split among 3 ranks (rows 33 and 66) would cut two
  // chunks, and both of their readers would read them.
  at::manual_seed(5);
  const at::Tensor saved = at::randn({100, 4});
  {
    StateDict sd;
    add_tensor(sd, "w", saved);
    SaveOptions o;
    o.chunk_bytes = 256;
    o.compression = Compression::kNone;
    Store store = Store::open(dir.path());
    save(sd, store, "c", o);
  }
  const std::vector<EntryInfo> described = describe(Store::open_read_only(dir.path()), "c");
  REQUIRE(described.size() == 1);
  REQUIRE(described[0].row_starts == Shape{0, 13, 26, 39, 52, 65, 78, 91});
  const int world = 3;
  std::vector<LoadResult> results(world);
  std::vector<int> equal(world, 0);
  auto errors = run_group(world, [&](int rank, Collective& group) {
    at::Tensor t = at::zeros({100, 4}, at::TensorOptions().device(device()));
    StateDict sd;
    add_shard(sd, "w", t, {100, 4}, {0, 0}, rank, world);
    results[rank] = load(sd, Store::open_read_only(dir.path()), "c", replicated_over(group));
    equal[rank] = at::equal(t.cpu(), saved);
  });
  uint64_t bytes = 0, chunks = 0;
  for (int r = 0; r < world; ++r) {
    CHECK_MESSAGE(errors[r].empty(), errors[r]);
    CHECK(equal[r] == 1);
    CHECK(results[r].chunks_read > 0);  // cut at 39 and 65: every rank reads some
    bytes += results[r].bytes_read;
    chunks += results[r].chunks_read;
  }
  CHECK(chunks == 8);  // not 10
  CHECK(bytes == static_cast<uint64_t>(described[0].stored_bytes));
}

TEST_CASE("LoadOptions::replicas: the same state loads replicated or plainly; one collective serves every load") {
  TempDir dir("replicated");
  Saved saved = save_fixture(dir.path());
  const int world = 3;
  const uint64_t own_shard_bytes = 10 * 8 * 4;
  std::vector<std::vector<uint64_t>> bytes_read(world);
  std::vector<std::vector<int>> equal(world);
  std::vector<std::string> refused(world);
  std::vector<int> untouched(world, 0);
  auto errors = run_group(world, [&](int rank, Collective& group) {
    auto on = at::TensorOptions().device(device());
    const Store store = Store::open_read_only(dir.path());
    std::map<std::string, at::Tensor> t;
    StateDict sd = fixture_state(saved, rank, world, t);
    auto load_and_check = [&](Collective* replicas) {  // the same state each time, reset
      for (auto& [name, tensor] : t) tensor.zero_();
      sd.add_value("step", int64_t{0});
      LoadOptions o;
      o.verify = false;
      o.replicas = replicas;
      const LoadResult r = load(sd, store, "c", o);
      CHECK(r.missing_keys.empty());
      CHECK(r.unexpected_keys.empty());
      bytes_read[rank].push_back(r.bytes_read);
      equal[rank].push_back(entries_equal(saved, rank, t, sd));
    };
    load_and_check(&group);
    load_and_check(nullptr);  // plain: every rank reads every replicated byte itself
    // A failed load through the collective (a replica count that is not the
    // group's): its held tensors must not come back in the next load.
    {
      StateDict bad;
      at::Tensor held = at::full({24, 40}, 7.0f, on).t();
      add_shard(bad, "wt", held, {40, 24}, {0, 0}, rank, world);
      at::Tensor wrong = at::zeros({101, 64}, on);
      add_shard(bad, "zz", wrong, {101, 64}, {0, 0}, rank, world + 1);
      try {
        load(bad, store, "c", replicated_over(group));
      } catch (const InvalidArgument& e) {
        refused[rank] = e.what();
      }
      load_and_check(&group);
      untouched[rank] = at::equal(held.cpu(), at::full({40, 24}, 7.0f));
    }
  });
  for (int r = 0; r < world; ++r) {
    CHECK_MESSAGE(errors[r].empty(), errors[r]);
    CHECK(equal[r] == std::vector<int>{7, 7, 7});
    CHECK(bytes_read[r][1] == saved.replicated_bytes + own_shard_bytes);
    CHECK(bytes_read[r][2] == bytes_read[r][0]);  // the same plan again
    CHECK(has(refused[r], "of " + std::to_string(world + 1) + ", but this is rank"));
    CHECK(untouched[r] == 1);
  }
  uint64_t replicated_total = 0;
  for (int r = 0; r < world; ++r) replicated_total += bytes_read[r][0];
  CHECK(replicated_total == saved.replicated_bytes + 3 * own_shard_bytes);  // as before: each byte once
}
