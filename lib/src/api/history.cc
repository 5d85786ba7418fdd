// The public history functions (tessera/history.h): rm, gc and diff, and
// keep_last for callers that hold a Store. engine/maintenance/ and
// engine/tools/diff carry them out.
#include "tessera/history.h"

#include "api/store_access.h"
#include "engine/maintenance/gc.h"
#include "engine/maintenance/remove.h"
#include "engine/save/retention.h"
#include "engine/tools/diff.h"
#include "tessera/error.h"

namespace tessera {

void remove_checkpoints(Store& store, const std::vector<std::string>& names) {
  Store::Impl& impl = StoreAccess::impl(store);
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only; cannot remove checkpoints");
  remove_checkpoints(impl, names);
}

GcPlan plan_gc(const Store& store, const GcOptions& options) { return plan_gc(StoreAccess::impl(store), options); }

GcResult run_gc(Store& store, const GcPlan& plan, const GcOptions& options) {
  return run_gc(StoreAccess::impl(store), plan, options);  // the engine refuses a read-only store, after linked dirs
}

DiffReport diff_checkpoints(const Store& store, const std::string& a, const std::string& b,
                            const DiffOptions& options) {
  return diff_checkpoints(StoreAccess::impl(store), a, b, options);
}

}  // namespace tessera
