// torch.distributed's engine as tessera's control plane: c10d's Store, the
// TCPStore that `torchrun` (or init_process_group) runs for the job.
//
//   auto env = tessera::JobEnvironment::from_env();        // RANK, WORLD_SIZE, MASTER_ADDR, ...
//   auto store = tessera::connect_store(env);              // torchrun's store, or rank 0 hosts one
//   auto plane = tessera::control_plane(store, env.rank, env.world_size);
//   auto ckpts = tessera::Store::open("/ckpt/run-7");      // every rank opens it
//   tessera::SaveOptions options;
//   options.plane = plane.get();
//   tessera::save(state, ckpts, "step-100", options);
//
// The same Store can back the job's Gloo/NCCL process groups; tessera's keys
// live under "tessera/". A process group of replicas (a c10d::Backend) serves
// replicated loads (tessera/replicas.h):
//
//   auto replicas = tessera::collective(*dp_group);
//   tessera::LoadOptions load_options;
//   load_options.replicas = replicas.get();
//   tessera::load(state, ckpts, "step-100", load_options);
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "tessera/distributed.h"
#include "tessera/replicas.h"

namespace tessera {

// The environment a launcher sets for each rank.
struct JobEnvironment {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // torchrun's agent already hosts the TCPStore (TORCHELASTIC_USE_AGENT_STORE=True);
  // otherwise rank 0 hosts it.
  bool agent_store = false;
  std::string restart_count = "0";  // TORCHELASTIC_RESTART_COUNT

  // Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT and torchrun's
  // TORCHELASTIC_* variables; without RANK it describes a single process.
  // Throws InvalidArgument naming a malformed variable.
  static JobEnvironment from_env();
};

// Connects to the job's TCPStore — as a client of torchrun's agent store
// (under the same "/worker/attempt_N" prefix PyTorch uses), or hosted by rank
// 0 when launched without torchrun.
c10::intrusive_ptr<c10d::Store> connect_store(const JobEnvironment& env,
                                              std::chrono::milliseconds timeout = std::chrono::minutes(5));

// A control plane over any c10d Store (e.g. one the application already has).
std::unique_ptr<ControlPlane> control_plane(c10::intrusive_ptr<c10d::Store> store, int64_t rank,
                                            int64_t world_size);

// The Collective (tessera/replicas.h) over a process group: NCCL for CUDA
// tensors, Gloo for CPU tensors; its entries' tensors are TorchSource ones
// (tessera/torch.h). The caller keeps `group` alive while the collective is
// used; one collective serves any number of loads, one at a time.
std::unique_ptr<Collective> collective(c10d::Backend& group);

}  // namespace tessera
