// The replicated load's entry point: tessera::load (checkpoint.h) with
// LoadOptions::replicas set comes here (tessera/replicas.h describes it).
//
// Protocol (every rank of the group, in this order):
//   1. read: this rank's rows of every replicated entry (tessera/replicas.h's
//      plan_replica_reads: cut at the chunk edges of the saved tensors, the
//      same on every rank), and all of its other entries, from storage (no
//      communication);
//   2. one allgather of {replicated entries, hash of their names/dtypes/
//      boxes, read ok}: any mismatch or failure makes every rank throw,
//      naming the rank, before a single broadcast is posted (no hang);
//      failures agree by the lowest failing rank (dist/failure.h);
//   3. for each replicated entry and each of its row ranges, broadcast the
//      rows from the rank that read them.
#pragma once

#include <string>

#include "engine/store_impl.h"
#include "tessera/checkpoint.h"
#include "tessera/replicas.h"

namespace tessera::dist {

// The load of `checkpoint` from `store` into `state` over *options.replicas.
// REQUIRES: options.replicas (the caller dispatches on it).
LoadResult load_replicated(StateDict& state, Store::Impl& store, const std::string& checkpoint,
                           const LoadOptions& options);

}  // namespace tessera::dist
