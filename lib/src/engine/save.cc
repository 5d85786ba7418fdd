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
  RankManifest m = write_shards(state, impl, options);
  try {
    commit_checkpoint(impl, checkpoint, {m}, options);
  } catch (...) {
    discard_packs(impl, m.packs);
    throw;
  }
  apply_retention_after_commit(store, options.keep_last, checkpoint, m.stats);
  return m.stats;
}

}  // namespace tessera
