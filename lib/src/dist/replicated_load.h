// The replicated-load protocol (tessera/replicated_load.h) over a Collective.
//
// Protocol (every rank of the group, in this order):
//   1. read: this rank's rows of every replicated entry (plan/replica_rows.h:
//      cut at the chunk edges that describe() reports, the same on every
//      rank), and all of its other entries, from storage (no communication);
//   2. one allgather of {replicated entries, hash of their names/dtypes/
//      boxes, read ok}: any mismatch or failure makes every rank throw,
//      naming the rank, before a single broadcast is posted (no hang);
//      failures agree by the lowest failing rank (dist/failure.h);
//   3. for each replicated entry and each of its row ranges, broadcast the
//      rows from the rank that read them.
#pragma once

#include <string>

#include "dist/collective.h"
#include "tessera/checkpoint.h"

namespace tessera::dist {

// tessera::load(state, store, checkpoint, replicas, options) over `group`.
LoadResult load_replicated(StateDict& state, const Store& store, const std::string& checkpoint, Collective& group,
                           const LoadOptions& options);

}  // namespace tessera::dist
