// The NCCL path of replicated loads (tessera/replicas.h): one rank per
// GPU, threads of this process, ProcessGroupNCCL over one HashStore. With one
// GPU the group has one rank (NCCL refuses two ranks on one device), which
// still runs the NCCL allgather and broadcasts; with several GPUs each reads
// 1/N of every replicated tensor. Skipped without a GPU (CI builds it only).
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdlib>
#include <thread>

#include "tessera/c10d.h"
#include "tessera/checkpoint.h"
#include "tessera/torch.h"
#include "test_util.h"

#include <doctest/doctest.h>  // after the torch headers (see toolchain.md)

using namespace tessera;
using tessera::test::TempDir;

TEST_CASE("replicated CUDA tensors load over NCCL: one read per byte across the GPUs, bit-exact on each") {
  if (!at::hasCUDA()) {
    MESSAGE("no CUDA device here: the NCCL test runs on the GPU machine only");
    return;
  }
  const int world = static_cast<int>(at::accelerator::deviceCount());
  MESSAGE("ranks (GPUs): " << world);
  TempDir dir("nccl");
  at::manual_seed(3);
  std::map<std::string, at::Tensor> saved{{"embed", at::randn({1000, 96}).to(at::kBFloat16)},
                                          {"w", at::randn({257, 33})},
                                          {"scalar", at::randn({})}};
  uint64_t replicated_bytes = 0;
  {
    StateDict sd;
    for (const auto& [name, t] : saved) {
      add_tensor(sd, name, t);
      replicated_bytes += t.numel() * t.element_size();
    }
    SaveOptions o;
    o.compression = Compression::kNone;
    Store store = Store::open(dir.path());
    save(sd, store, "c", o);
  }
  ::setenv("TORCH_FR_BUFFER_SIZE", "0", 1);  // see replicated_test.cc: one recorder, several groups in threads
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::string> errors(world);
  std::vector<uint64_t> bytes_read(world);
  std::vector<int> equal(world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back([&, r] {
      try {
        at::accelerator::setDeviceIndex(static_cast<c10::DeviceIndex>(r));
        c10d::ProcessGroupNCCL group(c10::make_intrusive<c10d::PrefixStore>("nccl", store), r, world);
        CHECK(group.getBackendName() == "nccl");
        StateDict sd;
        std::map<std::string, at::Tensor> t;
        for (const auto& [name, s] : saved) {
          t[name] = at::zeros_like(s, at::TensorOptions().device(at::kCUDA, r));
          add_shard(sd, name, t[name], s.sizes().vec(), Shape(s.dim(), 0), r, world);
        }
        auto replicas = collective(group);
        LoadOptions o;
        o.verify = false;
        o.replicas = replicas.get();
        bytes_read[r] = load(sd, Store::open_read_only(dir.path()), "c", o).bytes_read;
        for (const auto& [name, s] : saved) equal[r] += at::equal(t[name].cpu(), s);
        group.shutdown();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  uint64_t total = 0;
  for (int r = 0; r < world; ++r) {
    CHECK_MESSAGE(errors[r].empty(), errors[r]);
    CHECK(equal[r] == 3);
    total += bytes_read[r];
  }
  CHECK(total == replicated_bytes);
}
