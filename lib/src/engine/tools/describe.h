// The engine's describe: one checkpoint's entries as the catalog lists them
// (describe.cc).
#pragma once

#include <string>
#include <vector>

#include "engine/store_impl.h"
#include "tessera/inspect.h"

namespace tessera {

// What tessera::describe does (see tessera/inspect.h), on the store's insides.
std::vector<EntryInfo> describe(Store::Impl& store, const std::string& checkpoint);

}  // namespace tessera
