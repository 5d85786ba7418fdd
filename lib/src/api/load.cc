// The public load (tessera/checkpoint.h): the replicated one (dist/) when
// options.replicas is set, else the engine's (engine/load/).
#include "api/store_access.h"
#include "dist/replicated_load.h"
#include "engine/load/load.h"
#include "tessera/checkpoint.h"

namespace tessera {

LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, const LoadOptions& options) {
  Store::Impl& impl = StoreAccess::impl(store);
  if (options.replicas) return dist::load_replicated(state, impl, checkpoint, options);
  return engine::load(state, impl, checkpoint, options);
}

}  // namespace tessera
