// The engine's describe: one checkpoint's entries as the catalog lists them
// (describe.cc).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "geometry/box.h"

#include "engine/store_impl.h"
#include "tessera/inspect.h"

namespace tessera::engine {

// What tessera::describe does (see tessera/inspect.h), on the store's insides.
std::vector<EntryInfo> describe(Store::Impl& store, const std::string& checkpoint);

// For a load that splits boxes between ranks (dist/replicated_load.cc): the
// tensor entries `boxes` names, with their byte totals and the row starts of
// only their pieces that overlap the box given (only those are decoded; other
// tensors' pieces are not read). A name the checkpoint lacks is absent.
std::unordered_map<std::string, EntryInfo> describe_boxes(Store::Impl& store, const std::string& checkpoint,
                                                         const std::unordered_map<std::string, Box>& boxes);

}  // namespace tessera::engine
