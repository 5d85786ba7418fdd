// The engine's load: reads a checkpoint's entries into a state dict's
// targets (tessera/checkpoint.h's load() checks nothing more and calls it).
#pragma once

#include <string>

#include "engine/store_impl.h"
#include "tessera/checkpoint.h"

namespace tessera::engine {

// What tessera::load does (see tessera/checkpoint.h), on the store's insides.
LoadResult load(StateDict& state, Store::Impl& store, const std::string& checkpoint, const LoadOptions& options);

}  // namespace tessera::engine
