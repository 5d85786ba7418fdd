#include "plan/gc_plan.h"

#include <algorithm>

namespace tessera::plan {

bool worth_rewriting(const CatalogPack& pack, double rewrite_below) {
  return static_cast<double>(pack.live_bytes) < rewrite_below * static_cast<double>(pack.size_bytes);
}

std::string percent_live(const CatalogPack& pack) {
  return std::to_string(pack.size_bytes ? 100 * pack.live_bytes / pack.size_bytes : 0) + "%";
}

GcLists plan_gc_lists(const std::vector<CatalogPack>& packs, const std::vector<StoreFile>& pack_files,
                      const std::vector<StoreFile>& temp_files, double rewrite_below, std::chrono::seconds grace) {
  GcLists lists;
  std::set<std::string> named;
  for (size_t i = 0; i < packs.size(); ++i) {
    const CatalogPack& p = packs[i];
    named.insert(p.name);
    if (p.live_chunks == 0) {
      lists.delete_packs.push_back(i);
    } else if (worth_rewriting(p, rewrite_below)) {
      lists.rewrite_packs.push_back(i);
      lists.rewrite_live_bytes += p.live_bytes;
    }
  }
  for (size_t i = 0; i < pack_files.size(); ++i) {
    if (named.count(pack_files[i].name)) continue;
    if (old_enough(pack_files[i].age, grace)) lists.unknown_packs.push_back(i);
    else ++lists.young_unknown_packs;
  }
  for (size_t i = 0; i < temp_files.size(); ++i) {
    if (old_enough(temp_files[i].age, grace)) lists.temp_files.push_back(i);
    else ++lists.young_temp_files;
  }
  return lists;
}

std::optional<std::string> rewrite_abandoned(const std::optional<CatalogPack>& now, double rewrite_below) {
  if (!now || worth_rewriting(*now, rewrite_below)) return std::nullopt;
  return "checkpoints committed since planning made it " + percent_live(*now) + " live";
}

std::optional<std::string> rewrite_refusal(const std::string& pack, const std::string& abandoned,
                                           const std::vector<pack::ChunkEntry>* live_now,
                                           const std::vector<pack::ChunkId>& copied) {
  const std::string refused = "pack " + pack + " not rewritten: ";
  if (!abandoned.empty()) return refused + abandoned;
  if (!live_now) return refused + "it left the catalog meanwhile";
  const std::set<pack::ChunkId> done(copied.begin(), copied.end());
  if (std::any_of(live_now->begin(), live_now->end(), [&](const pack::ChunkEntry& e) { return !done.count(e.id); }))
    return refused + "a checkpoint committed since planning references more of it";
  return std::nullopt;
}

std::vector<std::string> drop_candidates(const std::vector<std::string>& planned_deletes,
                                         const std::vector<std::string>& rewritten,
                                         const std::vector<std::string>& new_unnamed_before) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto* list : {&planned_deletes, &rewritten, &new_unnamed_before})
    for (const std::string& name : *list)
      if (seen.insert(name).second) out.push_back(name);
  return out;
}

PackDrops settle_drops(const std::vector<std::string>& tried, const std::set<std::string>& deleted,
                       const std::vector<std::string>& planned_deletes,
                       const std::vector<std::string>& new_unnamed_before) {
  PackDrops d;
  const std::set<std::string> planned(planned_deletes.begin(), planned_deletes.end());
  for (const std::string& name : tried) {
    if (deleted.count(name)) d.dropped.push_back(name);
    else if (planned.count(name))
      d.skipped.push_back("pack " + name + " not deleted: a checkpoint committed since planning references it");
  }
  const std::set<std::string> dropped(d.dropped.begin(), d.dropped.end());
  for (const std::string& name : new_unnamed_before)
    if (!dropped.count(name)) d.new_packs.push_back(name);
  return d;
}

}  // namespace tessera::plan
