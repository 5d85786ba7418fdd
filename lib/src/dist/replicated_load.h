// The replicated-load protocol (tessera/replicated_load.h) over a Collective.
//
// Protocol (every rank of the group, in this order):
//   1. read: this rank's rows of every replicated entry, and all of its other
//      entries, from storage (no communication);
//   2. one allgather of {replicated entries, hash of their names/dtypes/
//      boxes, read ok}: any mismatch or failure makes every rank throw,
//      naming the rank, before a single broadcast is posted (no hang);
//      failures agree by the lowest failing rank (dist/failure.h);
//   3. for each replicated entry and each rank r, broadcast r's rows from r.
#pragma once

#include <string>

#include "dist/collective.h"
#include "tessera/checkpoint.h"

namespace tessera::dist {

// tessera::load(state, store, checkpoint, replicas, options) over `group`.
LoadResult load_replicated(StateDict& state, const Store& store, const std::string& checkpoint, Collective& group,
                           const LoadOptions& options);

}  // namespace tessera::dist
