#include "api/store_access.h"
#include "dist/save.h"
#include "engine/save/commit.h"
#include "engine/save/retention.h"
#include "engine/save/shard_writer.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"

namespace tessera {

SaveResult save(const StateDict& state, Store& store, const std::string& checkpoint, const SaveOptions& options) {
  Store::Impl& impl = StoreAccess::impl(store);
  if (options.plane) return dist::save(state, impl, checkpoint, options);
  engine::check_can_save(impl, checkpoint, options.overwrite);
  std::vector<engine::RankManifest> manifests(1);
  manifests[0] = engine::write_shards(state, impl, options);
  SaveResult stats = manifests[0].stats;
  // The commit takes the manifest (its tensors are not copied); a failed
  // commit discards the packs by name, so their chunk lists are not kept.
  std::vector<pack::PackInfo> packs;
  for (const pack::PackInfo& p : manifests[0].packs) packs.push_back(pack::PackInfo{p.name, p.size, {}});
  try {
    engine::commit_checkpoint(impl, checkpoint, std::move(manifests), 1, options);
  } catch (...) {
    engine::discard_packs(impl, packs);
    throw;
  }
  engine::apply_retention_after_commit(impl, options.keep_last, checkpoint, stats);
  return stats;
}

void abstain(ErrorKind kind, const std::string& what, const std::string& checkpoint, const SaveOptions& options) {
  dist::abstain(kind, what, checkpoint, options);
}

}  // namespace tessera
