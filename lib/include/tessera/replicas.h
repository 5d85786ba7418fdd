// Loading replicated tensors once: when the same box is needed on several
// ranks (data-parallel replicas), each rank reads part of it from storage and
// the parts are broadcast over the ranks' process group, instead of every
// rank reading the whole box.
//
//   // dp_group: the ranks that hold the same shards (an FSDP "replicate" or
//   // DDP group); entries marked with replica_index/replica_count, as for save.
//   auto replicas = tessera::collective(*dp_group);  // tessera/c10d.h: NCCL or Gloo
//   tessera::LoadOptions options;
//   options.replicas = replicas.get();
//   tessera::load(state, store, "step-100", options);  // checkpoint.h
//
// With LoadOptions::replicas set, load() is collective over the group: every
// rank of it must make the call. Entries with view.replica_count > 1 must
// have replica_count equal to the group's size and replica_index equal to the
// rank in the group (else load throws InvalidArgument naming the tensor);
// every rank of the group must ask for the same replicated entries (names,
// shapes and dtypes are checked with one allgather before any broadcast).
// Other entries and values load as a plain load loads them, on each rank.
// A rank whose reads fail throws its own error; the others throw the same
// class, naming the failing ranks; nobody hangs. LoadResult counts this
// rank's own reads; replicated entries are neither missing nor unexpected.
//
// Each replicated box's dimension-0 rows are cut into at most N ranges at the
// saved tensor's chunk edges (so that no chunk is read by two ranks; a box
// with no edge inside is one range), and each range goes, largest first, to
// the rank that has read the fewest stored bytes so far, ties to the lowest
// rank: plan_replica_reads below, the rule of tessera.load's read-once plans
// too. A rank reads its ranges straight into its own tensor, then broadcasts
// them from there. Broadcasts run after all reads (the Collective queues
// them); load returns when they have completed.
//
// This header is LibTorch-free: the Collective is an interface, and
// tessera/c10d.h's collective() is the one over a c10d::Backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/state_dict.h"

namespace tessera {

// A process group as the replicated load uses it. The tensors stay on the
// implementation's side, named by the handles hold() returns; the one over
// c10d (tessera/c10d.h) takes them from TorchSource entries (tessera/torch.h)
// and moves them with the backend's collectives (NCCL for CUDA tensors, Gloo
// for CPU tensors). Every rank calls the same methods in the same order.
// One collective serves any number of loads, one at a time: each load holds
// its tensors, then ends with finish() or, when it fails, abandon().
class Collective {
 public:
  virtual ~Collective() = default;
  // This rank's place in the group: 0 <= rank() < size().
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;

  // Takes the tensor of replicated entry `name` into the collective's care
  // (a contiguous one itself, else a contiguous temporary copied back by
  // finish()) and returns its handle.
  virtual size_t hold(const std::string& name, const TensorEntry& entry) = 0;
  // Adds to `state`, as entry `name`, rows [begin, end) of dimension 0 of
  // held tensor `handle` (the whole tensor when it is 0-D), placed at
  // `offsets` of a global tensor of `global_shape`: where a load lands them.
  virtual void add_rows(StateDict& state, const std::string& name, size_t handle, int64_t begin, int64_t end,
                        const Shape& global_shape, const Shape& offsets) = 0;

  // Every rank's `mine` (the same length on every rank), in rank order.
  virtual std::vector<std::vector<int64_t>> allgather(const std::vector<int64_t>& mine) = 0;
  // Queues a broadcast, from rank `root`, of rows [begin, end) of dimension 0
  // of held tensor `handle` (of the whole tensor, [0, 1), when it is 0-D).
  virtual void broadcast(size_t handle, int64_t begin, int64_t end, int64_t root) = 0;
  // Waits for the queued broadcasts, then copies temporaries back into their
  // entries' tensors, and lets go of every held tensor (the handles are spent).
  virtual void finish() = 0;
  // Lets go of every held tensor and queued broadcast without waiting or
  // copying back: the load failed. The handles are spent.
  virtual void abandon() = 0;
};

// ---- The read-once rule: which rows of a box several ranks need each of
// them reads from storage (the replicated load above; Python's read-once
// plans, tessera/_replicated.py, through tessera._core.plan_replica_reads).
// Pure: rows, chunk edges and byte counts in, row ranges and readers out.

struct RowRange {
  int64_t begin = 0;  // inclusive, a global dimension-0 row
  int64_t end = 0;    // exclusive
  bool operator==(const RowRange&) const = default;
};

// [begin, end) cut into at most `parts` ranges of about equal size, cutting
// only at `row_starts` that lie strictly inside it: cut i (of parts - 1) is
// the edge nearest to begin + (end - begin) * i / parts (ties to the lower
// edge), dropped when it does not advance. One range when no edge lies
// inside; none when the range is empty. `row_starts` may be in any order and
// hold edges outside the range.
std::vector<RowRange> split_rows(int64_t begin, int64_t end, int64_t parts, const Shape& row_starts);

// One box that several ranks need, as the plan sees it.
struct ReplicaBox {
  // Global dimension-0 rows of the box; [0, 1) for a 0-D tensor.
  int64_t begin = 0;
  int64_t end = 0;
  std::vector<int64_t> readers;  // the ranks that need the box: ascending, distinct, non-empty
  Shape row_starts;              // the saved tensor's chunk edges (EntryInfo::row_starts)
  uint64_t bytes = 0;            // raw bytes of the box: volume × element size
  // Of the saved tensor (EntryInfo): readers are balanced by the stored
  // (compressed) bytes they fetch, bytes × stored / logical (× 1 when
  // logical_bytes is 0).
  int64_t stored_bytes = 0;
  int64_t logical_bytes = 0;
};

struct RowPart {
  RowRange rows;
  int64_t reader = 0;  // the rank that reads `rows` from storage
  bool operator==(const RowPart&) const = default;
};

// For each box, in order: split_rows(begin, end, readers.size(), row_starts)
// with a reader for each range, ascending by rows. The ranges go largest
// first (ties: the lower rows), each to the reader that has read the fewest
// stored bytes so far (over every box of the plan), ties to the lowest rank.
// Boxes are assigned in the order given (the load of each rank carries over
// from box to box), so every rank that passes the same boxes gets the same
// plan.
// REQUIRES: every reader in [0, ranks).
std::vector<std::vector<RowPart>> plan_replica_reads(const std::vector<ReplicaBox>& boxes, int64_t ranks);

}  // namespace tessera
