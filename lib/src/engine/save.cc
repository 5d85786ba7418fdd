#include "engine/commit.h"
#include "engine/retention.h"
#include "engine/shard_writer.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"

namespace tessera {

SaveResult save(const StateDict& state, Store& store, const std::string& checkpoint, const SaveOptions& options) {
  Store::Impl& impl = store.impl();
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only; cannot save '" + checkpoint + "'");
  if (checkpoint.empty()) throw InvalidArgument("save: the checkpoint name must not be empty");
  {
    std::lock_guard lock(impl.mu);
    if (!options.overwrite && impl.catalog.find_checkpoint(checkpoint))
      throw AlreadyExistsError("checkpoint '" + checkpoint + "' already exists in store '" + impl.path + "'");
  }
  std::vector<RankManifest> manifests(1);
  manifests[0] = write_shards(state, impl, options);
  SaveResult stats = manifests[0].stats;
  const std::vector<pack::PackInfo> packs = manifests[0].packs;  // the commit takes the manifest (no copy of its tensors)
  try {
    commit_checkpoint(impl, checkpoint, std::move(manifests), options);
  } catch (...) {
    discard_packs(impl, packs);
    throw;
  }
  apply_retention_after_commit(store, options.keep_last, checkpoint, stats);
  return stats;
}

}  // namespace tessera
