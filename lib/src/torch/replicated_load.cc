// Replicated entries read once per group and broadcast. See
// tessera/replicated_load.h.
//
// Protocol (every rank of the group, in this order):
//   1. read: this rank's rows of every replicated entry, and all of its other
//      entries, from storage (no communication);
//   2. one allgather of {replicated entries, hash of their names/dtypes/
//      boxes, read ok}: any mismatch or failure makes every rank throw,
//      naming the rank, before a single broadcast is posted (no hang);
//   3. for each replicated entry and each rank r, broadcast r's rows from r.
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>

#include <exception>
#include <string>
#include <vector>

#include "tessera/error.h"
#include "tessera/replicated_load.h"
#include "tessera/torch.h"

namespace tessera {
namespace {

// Rows [begin, end) of dimension 0 that `rank` of `size` reads.
std::pair<int64_t, int64_t> rows_of(const at::Tensor& t, int64_t rank, int64_t size) {
  if (t.dim() == 0) return rank == 0 ? std::pair<int64_t, int64_t>{0, 1} : std::pair<int64_t, int64_t>{0, 0};
  const int64_t n = t.size(0);
  return {n * rank / size, n * (rank + 1) / size};
}

at::Tensor rows(const at::Tensor& t, std::pair<int64_t, int64_t> r) {
  return t.dim() == 0 ? t.reshape({1}) : t.narrow(0, r.first, r.second - r.first);
}

struct Hash {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  void add(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  void add(const Shape& s) {
    add(s.data(), s.size() * sizeof(int64_t));
    add("|", 1);
  }
};

struct Replicated {
  std::string name;
  at::Tensor target;  // the entry's tensor
  at::Tensor work;    // contiguous: the target itself, or a temporary copied back at the end
};

}  // namespace

LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, c10d::Backend& replicas,
                const LoadOptions& options) {
  const int64_t rank = replicas.getRank(), size = replicas.getSize();
  StateDict mine, rest;
  std::vector<Replicated> reps;
  Hash hash;
  LoadResult result, replicated_result;
  std::exception_ptr failure;  // held back until every rank knows (a throw here would hang the others)
  try {
    for (const auto& [name, entry] : state.entries()) {
      const auto* te = std::get_if<TensorEntry>(&entry);
      if (!te || te->view.replica_count <= 1) {
        rest.entries().emplace(name, entry);
        continue;
      }
      const TensorView& v = te->view;
      if (v.replica_count != size || v.replica_index != rank)
        throw InvalidArgument("tensor '" + name + "': replica " + std::to_string(v.replica_index) + " of " +
                              std::to_string(v.replica_count) + ", but this is rank " + std::to_string(rank) + " of " +
                              std::to_string(size) + " in the replica process group");
      at::Tensor target = entry_tensor(name, *te);
      at::Tensor work = target.is_contiguous() ? target : at::empty_like(target, at::MemoryFormat::Contiguous);
      auto r = rows_of(work, rank, size);
      if (r.second > r.first) {
        Shape offsets = v.offsets;
        if (!offsets.empty()) offsets[0] += r.first;
        add_shard(mine, name, work.dim() == 0 ? work : rows(work, r), v.global_shape, offsets);
      }
      hash.add(name);
      hash.add(v.dtype);
      hash.add(v.global_shape);
      hash.add(v.offsets);
      hash.add(v.sizes);
      reps.push_back(Replicated{name, target, work});
    }
    // 1. Reads.
    LoadOptions strict = options;
    strict.strict = true;  // a replicated entry the others wait for must exist
    replicated_result = load(mine, store, checkpoint, strict);
    result = load(rest, store, checkpoint, options);
  } catch (...) {
    failure = std::current_exception();
  }

  // 2. Agree on the replicated entries and on success.
  const bool on_gpu = replicas.getBackendName() == "nccl";
  const at::Device device = on_gpu ? at::Device(at::kCUDA, at::accelerator::getDeviceIndex()) : at::Device(at::kCPU);
  // {entries, hash, -1 when this rank's load worked, else its error's ErrorKind}
  int64_t failure_kind = -1;
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      failure_kind = static_cast<int64_t>(error_kind(e));
    } catch (...) {
      failure_kind = static_cast<int64_t>(ErrorKind::kError);
    }
  }
  at::Tensor mine_info = at::tensor({static_cast<int64_t>(reps.size()), static_cast<int64_t>(hash.h), failure_kind},
                                    at::TensorOptions().dtype(at::kLong))
                             .to(device);
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (int64_t r = 0; r < size; ++r) gathered[0].push_back(at::empty_like(mine_info));
  std::vector<at::Tensor> input{mine_info};
  replicas.allgather(gathered, input)->wait();
  std::vector<at::Tensor> infos;  // each rank's {entries, hash, failure kind}, on the host
  for (const at::Tensor& t : gathered[0]) infos.push_back(t.to(at::kCPU));
  std::vector<int64_t> failed;
  for (int64_t r = 0; r < size; ++r)
    if (infos[r].data_ptr<int64_t>()[2] >= 0) failed.push_back(r);
  if (!failed.empty()) {
    std::string ranks;
    for (int64_t r : failed) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (failure) std::rethrow_exception(failure);  // this rank's own error, as tessera::load throws it
    // The others throw the class of the lowest failing rank's error.
    throw_error(static_cast<ErrorKind>(infos[failed[0]].data_ptr<int64_t>()[2]),
                "load of checkpoint '" + checkpoint + "' failed on rank(s) " + ranks + " of the replica group");
  }
  for (int64_t r = 0; r < size; ++r) {
    const int64_t* p = infos[r].data_ptr<int64_t>();
    if (p[0] != static_cast<int64_t>(reps.size()) || p[1] != static_cast<int64_t>(hash.h))
      throw InvalidArgument("load of checkpoint '" + checkpoint + "': rank " + std::to_string(r) + " asks for " +
                            std::to_string(p[0]) + " replicated entries and rank " + std::to_string(rank) + " for " +
                            std::to_string(reps.size()) +
                            (p[0] == static_cast<int64_t>(reps.size()) ? " with different names, dtypes or boxes" : "") +
                            ": every rank of the replica group must ask for the same ones");
  }

  // 3. Every rank's rows from that rank.
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const Replicated& rep : reps) {
    if (rep.work.numel() == 0) continue;
    for (int64_t r = 0; r < size; ++r) {
      auto span = rows_of(rep.work, r, size);
      if (span.second <= span.first) continue;
      std::vector<at::Tensor> tensors{rows(rep.work, span)};
      c10d::BroadcastOptions o;
      o.rootRank = r;
      works.push_back(replicas.broadcast(tensors, o));
    }
  }
  for (auto& w : works) w->wait();
  for (const Replicated& rep : reps)
    if (!rep.work.is_same(rep.target)) rep.target.copy_(rep.work);

  // Values land in `rest`'s copies; hand them back.
  for (auto& [name, entry] : rest.entries())
    if (std::holds_alternative<Value>(entry)) state.entries()[name] = entry;
  std::vector<std::string> unexpected;
  for (const auto& name : result.unexpected_keys)
    if (!state.contains(name)) unexpected.push_back(name);
  result.unexpected_keys = std::move(unexpected);
  result.bytes_read += replicated_result.bytes_read;
  result.chunks_read += replicated_result.chunks_read;
  return result;
}

}  // namespace tessera
