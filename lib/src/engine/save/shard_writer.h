// The first half of a save, run by every rank: write this rank's shards as
// chunks into new durable packs and describe what was written. The second
// half (commit.h) validates the descriptions of all ranks and commits them.
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "engine/store_impl.h"
#include "tessera/checkpoint.h"

namespace tessera::engine {

// What one rank contributes to a checkpoint.
struct RankManifest {
  int64_t rank = 0;
  std::vector<catalog::TensorRecord> tensors;  // pieces this rank wrote or referenced
  std::vector<catalog::ValueRecord> values;
  std::vector<pack::PackInfo> packs;           // durable, not yet referenced by the catalog
  SaveResult stats;
};

// Writes the chunks of `state` this rank owns (of a replicated box, replica
// k % replica_count writes its chunk k). On failure removes the packs it
// finished and rethrows.
RankManifest write_shards(const StateDict& state, Store::Impl& store, const SaveOptions& options);

// Best-effort removal of packs that no catalog row references (after a
// failed save).
void discard_packs(Store::Impl& store, const std::vector<pack::PackInfo>& packs);

}  // namespace tessera::engine
