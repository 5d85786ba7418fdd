// The public load (tessera/checkpoint.h): the replicated one (dist/) when
// options.replicas is set, else the engine's (engine/load/).
#include "dist/replicated_load.h"
#include "engine/load/load.h"
#include "tessera/checkpoint.h"

namespace tessera {

LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, const LoadOptions& options) {
  if (options.replicas) return dist::load_replicated(state, store, checkpoint, options);
  return load(state, StoreAccess::impl(store), checkpoint, options);
}

}  // namespace tessera
