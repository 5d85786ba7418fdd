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
  engine::remove_checkpoints(impl, names);
}

uint64_t GcPlan::bytes_freed() const {
  uint64_t n = 0;
  for (const auto& f : delete_packs) n += f.size_bytes;
  for (const auto& f : rewrite_packs) n += f.size_bytes - f.live_bytes;
  for (const auto& f : unknown_packs) n += f.size_bytes;
  for (const auto& f : temp_files) n += f.size_bytes;
  return n;
}

bool GcPlan::empty() const {
  return delete_packs.empty() && rewrite_packs.empty() && unknown_packs.empty() && temp_files.empty() &&
         orphan_chunks == 0;
}

GcPlan plan_gc(const Store& store, const GcOptions& options) {
  return engine::plan_gc(StoreAccess::impl(store), options);
}

GcResult run_gc(Store& store, const GcPlan& plan, const GcOptions& options) {
  return engine::run_gc(StoreAccess::impl(store), plan, options);  // the engine refuses a read-only store, after linked dirs
}

DiffReport diff_checkpoints(const Store& store, const std::string& a, const std::string& b,
                            const DiffOptions& options) {
  return engine::diff_checkpoints(StoreAccess::impl(store), a, b, options);
}

}  // namespace tessera
