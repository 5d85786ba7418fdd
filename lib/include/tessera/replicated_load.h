// Loading replicated tensors once: when the same box is needed on several
// ranks (data-parallel replicas), each rank reads part of it from storage and
// the parts are broadcast over a process group (NCCL for CUDA tensors, Gloo
// for CPU tensors), instead of every rank reading the whole box.
//
//   // dp_group: the ranks that hold the same shards (an FSDP "replicate" or
//   // DDP group); entries marked with replica_index/replica_count, as for save.
//   tessera::load(state, store, "step-100", *dp_group);
//
// Entries with view.replica_count > 1 must have replica_count equal to the
// group's size and replica_index equal to the rank in the group; every rank
// of the group must ask for the same replicated entries (names, shapes and
// dtypes are checked with one allgather before any broadcast). Other entries
// and values load as tessera::load (checkpoint.h) loads them, on each rank.
//
// Each replicated box's dimension-0 rows are cut into at most N ranges at the
// saved tensor's chunk edges (so that no chunk is read by two ranks; a box
// with no edge inside is one range), and each range goes, largest first, to
// the rank that has read the fewest stored bytes so far, ties to the lowest
// rank (the rule of tessera.load's read-once plans too). A rank reads its
// ranges straight into its own tensor, then broadcasts them from there. Broadcasts run after all reads, queued on the backend's
// streams; load returns when they have completed.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>

#include "tessera/checkpoint.h"

namespace tessera {

// Collective over `replicas`. Throws InvalidArgument naming the tensor for a
// replica index or count that does not match the group, and the errors of
// tessera::load. LoadResult counts this rank's own reads; replicated entries
// are neither missing nor unexpected.
LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, c10d::Backend& replicas,
                const LoadOptions& options = {});

}  // namespace tessera
