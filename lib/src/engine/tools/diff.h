// The engine's diff: what changed between two checkpoints (diff.cc).
#pragma once

#include <string>

#include "engine/store_impl.h"
#include "tessera/history.h"

namespace tessera::engine {

// What tessera::diff_checkpoints does (see tessera/history.h), on the
// store's insides.
DiffReport diff_checkpoints(Store::Impl& store, const std::string& a, const std::string& b, const DiffOptions& options);

}  // namespace tessera::engine
