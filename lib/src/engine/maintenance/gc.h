// The engine's gc: planning from the catalog and the directories, then
// copying, committing and deleting (gc.cc).
#pragma once

#include "engine/store_impl.h"
#include "tessera/history.h"

namespace tessera::engine {

// What tessera::plan_gc and tessera::run_gc do (see tessera/history.h), on
// the store's insides.
GcPlan plan_gc(Store::Impl& store, const GcOptions& options);
GcResult run_gc(Store::Impl& store, const GcPlan& plan, const GcOptions& options);

}  // namespace tessera::engine
