// The engine's verify: the catalog's rows and every chunk they use, re-read
// and checked (verify.cc).
#pragma once

#include <string>
#include <vector>

#include "engine/store_impl.h"
#include "tessera/inspect.h"

namespace tessera::engine {

// What tessera::verify does (see tessera/inspect.h), on the store's insides.
VerifyReport verify(Store::Impl& store, const std::vector<std::string>& checkpoints, const VerifyOptions& options);

}  // namespace tessera::engine
