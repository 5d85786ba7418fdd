// The second half of a save, run by the coordinator only: validate what every
// rank wrote and commit the checkpoint in one catalog transaction.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/save/shard_writer.h"

namespace tessera::engine {

// Checks that the manifests describe a consistent state — each tensor has
// one dtype and global shape across ranks, its pieces tile the global shape
// exactly, values are not also tensors — and commits. Throws InvalidArgument
// naming the tensor and ranks, or AlreadyExistsError if the name exists; on
// failure the catalog is unchanged. `world_size` (the ranks that saved) and
// `save_token` are recorded with the checkpoint; `before_commit` runs inside the catalog transaction just before
// COMMIT (see Catalog::commit) and may veto it by throwing. The manifests are
// taken by value: their pieces and packs move into the commit (a million
// pieces are not copied), so a caller that needs them afterwards passes a copy.
// Whether a save of `checkpoint` into `store` may start: throws StoreError
// for a read-only store, InvalidArgument for an empty name, and
// AlreadyExistsError when the name is taken and `overwrite` is off (the
// commit checks the name again: another process may take it meanwhile).
void check_can_save(Store::Impl& store, const std::string& checkpoint, bool overwrite);

void commit_checkpoint(Store::Impl& store, const std::string& checkpoint, std::vector<RankManifest> manifests,
                       int64_t world_size, const SaveOptions& options, const std::string& save_token = "",
                       const std::function<void()>& before_commit = {});

}  // namespace tessera::engine
