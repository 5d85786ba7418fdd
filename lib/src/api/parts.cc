#include "tessera/parts.h"

#include "api/store_access.h"
#include "engine/save/commit.h"
#include "engine/save/manifest_codec.h"
#include "engine/save/retention.h"
#include "engine/save/shard_writer.h"
#include "tessera/error.h"

namespace tessera {

SavedPart write_part(const StateDict& state, Store& store, const SaveOptions& options, int64_t rank) {
  engine::RankManifest m = engine::write_shards(state, StoreAccess::impl(store), options);
  m.rank = rank;
  SavedPart part;
  part.stats = m.stats;
  part.manifest = engine::encode_manifest(m);
  return part;
}

SaveResult commit_parts(Store& store, const std::string& checkpoint, const std::vector<std::string>& manifests,
                        int64_t world_size, const SaveOptions& options) {
  Store::Impl& impl = StoreAccess::impl(store);
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only; cannot commit '" + checkpoint + "'");
  if (checkpoint.empty()) throw InvalidArgument("commit: the checkpoint name must not be empty");
  if (world_size < 1)
    throw InvalidArgument("commit of '" + checkpoint + "': world_size must be 1 or more, got " + std::to_string(world_size));
  engine::check_keep_last(options.keep_last);
  std::vector<engine::RankManifest> all;
  all.reserve(manifests.size());
  SaveResult total;
  for (const std::string& bytes : manifests) {
    try {
      all.push_back(engine::decode_manifest(bytes));
    } catch (const std::runtime_error& e) {
      throw InvalidArgument("commit of '" + checkpoint + "': malformed part manifest: " + e.what());
    }
    const SaveResult& s = all.back().stats;
    total.logical_bytes += s.logical_bytes;
    total.written_bytes += s.written_bytes;
    total.chunks += s.chunks;
    total.chunks_written += s.chunks_written;
    total.packs += s.packs;
  }
  engine::commit_checkpoint(impl, checkpoint, std::move(all), world_size, options);
  engine::apply_retention_after_commit(impl, options.keep_last, checkpoint, total);
  return total;
}

void discard_part(Store& store, const std::string& manifest) {
  try {
    engine::discard_packs(StoreAccess::impl(store), engine::decode_manifest(manifest).packs);
  } catch (...) {
  }
}

}  // namespace tessera
