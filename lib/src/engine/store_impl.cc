// What the engine's jobs share about a store: finding a checkpoint by name.
#include "engine/store_impl.h"

#include "tessera/error.h"

namespace tessera::engine {

catalog::CheckpointInfo require_checkpoint(Store::Impl& store, const std::string& name) {
  auto c = store.catalog.find_checkpoint(name);
  if (!c) throw NotFoundError("checkpoint '" + name + "' not found in store '" + store.path + "'");
  return *c;
}

}  // namespace tessera::engine
