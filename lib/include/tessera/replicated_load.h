// Loading replicated tensors once: when the same box is needed on several
// ranks (data-parallel replicas), each rank reads 1/N of it from storage and
// the pieces are broadcast over a process group (NCCL for CUDA tensors, Gloo
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
// Rank r reads rows [r*n/N, (r+1)*n/N) of dimension 0 of each replicated box
// (rank 0 reads 0-D tensors), straight into its own tensor, then broadcasts
// them from there. Broadcasts run after all reads, queued on the backend's
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
