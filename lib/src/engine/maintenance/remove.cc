// remove_checkpoints() and keep_last: deleting checkpoints from the catalog.
// rm leaves their chunks and packs to gc (gc.cc); keep_last deletes the
// packs left fully dead at once.
#include <mutex>

#include "catalog/maintenance.h"
#include "engine/maintenance/gc.h"
#include "engine/maintenance/history_hooks.h"
#include "engine/maintenance/remove.h"
#include "engine/messages.h"
#include "engine/save/retention.h"
#include "tessera/error.h"

namespace tessera::engine {
namespace {

std::mutex hook_mu;
HistoryStepHook step_hook;

}  // namespace

void set_history_step_hook(HistoryStepHook hook) {
  std::lock_guard lock(hook_mu);
  step_hook = std::move(hook);
}

void history_step(std::string_view step) {
  HistoryStepHook hook;
  {
    std::lock_guard lock(hook_mu);
    hook = step_hook;
  }
  if (hook) hook(step);
}

void remove_checkpoints(Store::Impl& impl, const std::vector<std::string>& names) {
  std::lock_guard lock(impl.mu);
  try {
    auto tx = impl.catalog.transaction(catalog::Transaction::Kind::kWrite);
    const std::vector<std::string> unknown = catalog::delete_checkpoints(impl.catalog, names);
    if (!unknown.empty())
      throw NotFoundError((unknown.size() == 1 ? "checkpoint " : "checkpoints ") + quoted_list(unknown) +
                          " not found in store '" + impl.path +
                          "'; nothing removed");
    history_step("rm: before commit");
    tx.commit();
  } catch (const catalog::CatalogError& e) {
    throw StoreError("store '" + impl.path + "': cannot remove " + quoted_list(names) + ": " + e.what());
  }
}

void check_keep_last(int64_t keep_last) {
  if (keep_last < 0)
    throw InvalidArgument("save: keep_last must be 0 (keep all) or positive, got " + std::to_string(keep_last));
}

std::vector<std::string> apply_keep_last(Store::Impl& store, int64_t keep_last, const std::string& just_saved) {
  if (keep_last <= 0) return {};
  std::lock_guard lock(store.mu);
  auto tx = store.catalog.transaction(catalog::Transaction::Kind::kWrite);
  const std::vector<std::string> names = catalog::checkpoint_names(store.catalog);
  const int64_t excess = static_cast<int64_t>(names.size()) - keep_last;
  std::vector<std::string> victims;
  for (size_t i = 0; i < names.size() && static_cast<int64_t>(victims.size()) < excess; ++i)
    if (names[i] != just_saved) victims.push_back(names[i]);
  if (victims.empty()) return {};
  catalog::delete_checkpoints(store.catalog, victims);
  tx.commit();
  return victims;
}

void apply_retention_after_commit(Store::Impl& store, int64_t keep_last, const std::string& just_saved,
                                  SaveResult& result) {
  const std::string committed = "checkpoint '" + just_saved + "' was committed to store '" + store.path + "', but ";
  try {
    result.removed = apply_keep_last(store, keep_last, just_saved);
  } catch (const std::exception& e) {
    throw StoreError(committed + "keep_last = " + std::to_string(keep_last) +
                     " could not remove older checkpoints: " + e.what());
  }
  if (result.removed.empty()) return;
  try {
    GcOptions options;
    options.rewrite_below = 0;  // deletes only: no copying inside a save
    GcPlan plan = plan_gc(store, options);
    if (plan.young_unknown_packs > 0) return;  // another save may dedup against what would go
    plan.unknown_packs.clear();  // leftovers of killed saves: gc's business
    plan.temp_files.clear();
    if (plan.delete_packs.empty() && plan.orphan_chunks == 0) return;
    const GcResult freed = run_gc(store, plan, options);
    result.freed_bytes = freed.bytes_freed > 0 ? static_cast<uint64_t>(freed.bytes_freed) : 0;
  } catch (const std::exception& e) {
    throw StoreError(committed + "after keep_last removed " + quoted_list(result.removed) +
                     ", deleting their packs failed (run tessera gc): " + e.what());
  }
}

}  // namespace tessera::engine
