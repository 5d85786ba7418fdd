// The distributed save's entry point: tessera::save (checkpoint.h) with
// SaveOptions::plane set comes here (tessera/distributed.h describes it).
#pragma once

#include <string>

#include "tessera/distributed.h"

namespace tessera::dist {

// The save of `state` as `checkpoint` into `store` over *options.plane.
// REQUIRES: options.plane (the caller dispatches on it). Throws
// InvalidArgument naming the rank and world size when the plane's rank is
// outside [0, world size), before the plane is used.
SaveResult save(const StateDict& state, Store& store, const std::string& checkpoint, const SaveOptions& options);

}  // namespace tessera::dist
