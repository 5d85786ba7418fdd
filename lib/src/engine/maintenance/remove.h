// The engine's rm: deleting checkpoints from the catalog (remove.cc; their
// chunks and packs are gc's).
#pragma once

#include <string>
#include <vector>

#include "engine/store_impl.h"

namespace tessera::engine {

// What tessera::remove_checkpoints does (see tessera/history.h), minus the
// read-only check, which api/ makes.
void remove_checkpoints(Store::Impl& store, const std::vector<std::string>& names);

}  // namespace tessera::engine
