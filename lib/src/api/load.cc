// The public load (tessera/checkpoint.h); engine/load/ carries it out.
#include "api/store_access.h"
#include "engine/load/load.h"
#include "tessera/checkpoint.h"

namespace tessera {

LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, const LoadOptions& options) {
  return engine::load(state, StoreAccess::impl(store), checkpoint, options);
}

}  // namespace tessera
