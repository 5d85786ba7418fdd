#include "dist/replicated_load.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "dist/failure.h"
#include "tessera/error.h"

namespace tessera::dist {
namespace {

// Rows [begin, end) of dimension 0 that `rank` of `size` reads of a tensor
// of local `sizes` (rank 0 reads a 0-D tensor).
std::pair<int64_t, int64_t> rows_of(const Shape& sizes, int64_t rank, int64_t size) {
  if (sizes.empty()) return rank == 0 ? std::pair<int64_t, int64_t>{0, 1} : std::pair<int64_t, int64_t>{0, 0};
  const int64_t n = sizes[0];
  return {n * rank / size, n * (rank + 1) / size};
}

int64_t numel(const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
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
  size_t handle;  // in the Collective
  Shape sizes;    // the entry's local sizes
};

}  // namespace

LoadResult load_replicated(StateDict& state, const Store& store, const std::string& checkpoint, Collective& group,
                           const LoadOptions& options) {
  const int64_t rank = group.rank(), size = group.size();
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
      const size_t handle = group.hold(name, *te);
      auto r = rows_of(v.sizes, rank, size);
      if (r.second > r.first) {
        Shape offsets = v.offsets;
        if (!offsets.empty()) offsets[0] += r.first;
        group.add_rows(mine, name, handle, r.first, r.second, v.global_shape, offsets);
      }
      hash.add(name);
      hash.add(v.dtype);
      hash.add(v.global_shape);
      hash.add(v.offsets);
      hash.add(v.sizes);
      reps.push_back(Replicated{handle, v.sizes});
    }
    // 1. Reads.
    LoadOptions strict = options;
    strict.strict = true;  // a replicated entry the others wait for must exist
    replicated_result = load(mine, store, checkpoint, strict);
    result = load(rest, store, checkpoint, options);
  } catch (...) {
    failure = std::current_exception();
  }

  // 2. Agree on the replicated entries and on success: each rank's
  // {entries, hash, -1 when its load worked, else its error's ErrorKind}.
  const std::vector<std::vector<int64_t>> infos =
      group.allgather({static_cast<int64_t>(reps.size()), static_cast<int64_t>(hash.h), kind_number(failure)});
  std::vector<int64_t> kinds;
  for (const auto& info : infos) kinds.push_back(info[2]);
  const Agreement agreement = agree(kinds);
  if (!agreement.ok()) {
    if (failure) std::rethrow_exception(failure);  // this rank's own error, as tessera::load throws it
    // The others throw the class of the lowest failing rank's error.
    throw_error(static_cast<ErrorKind>(agreement.kind), "load of checkpoint '" + checkpoint + "' failed on rank(s) " +
                                                            agreement.ranks() + " of the replica group");
  }
  for (int64_t r = 0; r < size; ++r) {
    const std::vector<int64_t>& p = infos[r];
    if (p[0] != static_cast<int64_t>(reps.size()) || p[1] != static_cast<int64_t>(hash.h))
      throw InvalidArgument("load of checkpoint '" + checkpoint + "': rank " + std::to_string(r) + " asks for " +
                            std::to_string(p[0]) + " replicated entries and rank " + std::to_string(rank) + " for " +
                            std::to_string(reps.size()) +
                            (p[0] == static_cast<int64_t>(reps.size()) ? " with different names, dtypes or boxes" : "") +
                            ": every rank of the replica group must ask for the same ones");
  }

  // 3. Every rank's rows from that rank.
  for (const Replicated& rep : reps) {
    if (numel(rep.sizes) == 0) continue;
    for (int64_t r = 0; r < size; ++r) {
      auto span = rows_of(rep.sizes, r, size);
      if (span.second <= span.first) continue;
      group.broadcast(rep.handle, span.first, span.second, r);
    }
  }
  group.finish();

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

}  // namespace tessera::dist
