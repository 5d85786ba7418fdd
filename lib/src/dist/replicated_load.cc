#include "dist/replicated_load.h"

#include <exception>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dist/failure.h"
#include "engine/load/load.h"
#include "engine/tools/describe.h"
#include "geometry/box.h"
#include "tessera/error.h"
#include "tessera/inspect.h"

namespace tessera::dist {
namespace {

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

// The global dimension-0 row of the view's local row 0 (0 for a 0-D
// tensor; a view whose offsets are missing fails its load's check).
int64_t first_row(const TensorView& v) { return v.offsets.empty() ? 0 : v.offsets[0]; }

struct Replicated {
  const std::string* name;     // in the caller's state
  const TensorView* view;      // in the caller's state
  size_t handle;               // in the Collective
  std::vector<RowPart> parts;  // who reads which rows (global dimension-0 rows)
};

// The entry's box as the row-split rule sees it, needed by every rank of a
// group of `ranks`. Only the entry's box and the catalog (`saved`, null when
// the checkpoint has no such tensor: its load fails anyway) go in, so that
// every rank computes the same split.
ReplicaBox replica_box(const TensorView& v, int64_t ranks, const EntryInfo* saved) {
  ReplicaBox box;
  box.begin = first_row(v);
  box.end = box.begin + (v.sizes.empty() ? 1 : v.sizes[0]);
  for (int64_t r = 0; r < ranks; ++r) box.readers.push_back(r);
  box.bytes = static_cast<uint64_t>(volume(v.sizes)) * v.elem_size;  // of the target's dtype (the same on every rank)
  if (saved) {
    box.row_starts = saved->row_starts;
    box.stored_bytes = saved->stored_bytes;
    box.logical_bytes = saved->logical_bytes;
  }
  return box;
}

// Plans which rank reads which rows of each of `reps` (plan_replica_reads),
// from the checkpoint's chunk edges inside their boxes (only those pieces are read).
void plan_rows(std::vector<Replicated>& reps, Store::Impl& store, const std::string& checkpoint, int64_t ranks) {
  if (reps.empty()) return;
  std::unordered_map<std::string, Box> wanted;
  for (const Replicated& rep : reps) {
    const TensorView& v = *rep.view;
    if (v.offsets.size() == v.sizes.size()) wanted.emplace(*rep.name, Box{v.offsets, v.sizes});  // else its load fails
  }
  const auto saved = engine::describe_boxes(store, checkpoint, wanted);
  std::vector<ReplicaBox> boxes;
  for (const Replicated& rep : reps) {
    auto it = saved.find(*rep.name);
    boxes.push_back(replica_box(*rep.view, ranks, it == saved.end() ? nullptr : &it->second));
  }
  std::vector<std::vector<RowPart>> parts = plan_replica_reads(boxes, ranks);
  for (size_t i = 0; i < reps.size(); ++i) reps[i].parts = std::move(parts[i]);
}

// The protocol (dist/replicated_load.h); `group` holds this load's tensors
// until it finishes.
LoadResult load_over(Collective& group, StateDict& state, Store::Impl& store, const std::string& checkpoint,
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
      hash.add(name);
      hash.add(v.dtype);
      hash.add(v.global_shape);
      hash.add(v.offsets);
      hash.add(v.sizes);
      reps.push_back(Replicated{&name, &v, group.hold(name, *te), {}});
    }
    plan_rows(reps, store, checkpoint, size);
    for (const Replicated& rep : reps)
      for (const RowPart& part : rep.parts) {
        if (part.reader != rank) continue;
        Shape offsets = rep.view->offsets;
        if (!offsets.empty()) offsets[0] = part.rows.begin;
        const int64_t first = first_row(*rep.view);
        group.add_rows(mine, *rep.name, rep.handle, part.rows.begin - first, part.rows.end - first,
                       rep.view->global_shape, offsets);
      }
    // 1. Reads: each rank its own, by the engine's load (a plain one: it
    // does not look at options.replicas).
    LoadOptions strict = options;
    strict.strict = true;  // a replicated entry the others wait for must exist
    replicated_result = engine::load(mine, store, checkpoint, strict);
    result = engine::load(rest, store, checkpoint, options);
  } catch (...) {
    failure = std::current_exception();
  }

  // 2. Agree on the replicated entries and on success: each rank's
  // {entries, hash, -1 when its load worked, else its error's ErrorKind}.
  const std::vector<std::vector<int64_t>> infos =
      group.allgather({static_cast<int64_t>(reps.size()), static_cast<int64_t>(hash.h), kind_number(failure)});
  std::vector<int64_t> kinds;
  for (const auto& info : infos) kinds.push_back(info[2]);
  const FailureAgreement agreement = agree_on_failures(kinds);
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

  // 3. Every part's rows from its reader.
  for (const Replicated& rep : reps) {
    if (volume(rep.view->sizes) == 0) continue;
    const int64_t first = first_row(*rep.view);
    for (const RowPart& part : rep.parts)
      group.broadcast(rep.handle, part.rows.begin - first, part.rows.end - first, part.reader);
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

}  // namespace

LoadResult load_replicated(StateDict& state, Store::Impl& store, const std::string& checkpoint,
                           const LoadOptions& options) {
  Collective& group = *options.replicas;
  try {
    return load_over(group, state, store, checkpoint, options);
  } catch (...) {
    group.abandon();  // the next load through `group` starts clean
    throw;
  }
}

}  // namespace tessera::dist
