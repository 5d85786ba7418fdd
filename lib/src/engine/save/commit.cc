#include "engine/save/commit.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>

#include "plan/tiling.h"
#include "tessera/error.h"

namespace tessera::engine {
namespace {

std::string rank_list(std::vector<int64_t> ranks) {
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::string s;
  for (int64_t r : ranks) s += (s.empty() ? "" : ", ") + std::to_string(r);
  return (ranks.size() == 1 ? "rank " : "ranks ") + s;
}

AlreadyExistsError name_taken(const Store::Impl& store, const std::string& checkpoint) {
  return AlreadyExistsError("checkpoint '" + checkpoint + "' already exists in store '" + store.path + "'");
}

}  // namespace

void check_can_save(Store::Impl& store, const std::string& checkpoint, bool overwrite) {
  if (store.read_only)
    throw StoreError("store '" + store.path + "' is open read-only; cannot save '" + checkpoint + "'");
  if (checkpoint.empty()) throw InvalidArgument("save: the checkpoint name must not be empty");
  std::lock_guard lock(store.mu);
  if (!overwrite && store.catalog.find_checkpoint(checkpoint)) throw name_taken(store, checkpoint);
}

void commit_checkpoint(Store::Impl& store, const std::string& checkpoint, std::vector<RankManifest> manifests,
                       int64_t world_size, const SaveOptions& options, const std::string& save_token,
                       const std::function<void()>& before_commit) {
  catalog::NewCheckpoint c;
  c.save_token = save_token;
  c.name = checkpoint;
  c.world_size = world_size;
  c.metadata = options.metadata;
  c.packs_dir = store.packs_dir();  // a pack gc removed meanwhile fails the commit
  c.replace_existing = options.overwrite;

  struct Merged {
    catalog::TensorRecord record;
    std::vector<int64_t> ranks;  // that saved pieces of it (repeats possible; rank_list sorts)
  };
  std::vector<Merged> tensors;
  std::unordered_map<std::string, size_t> by_name;
  std::map<std::string, std::pair<Value, int64_t>> values;
  for (RankManifest& m : manifests) {
    for (auto& t : m.tensors) {
      auto [it, fresh] = by_name.try_emplace(t.name, tensors.size());
      if (fresh) {
        Merged& g = tensors.emplace_back();
        g.record.name = t.name;
        g.record.dtype = t.dtype;
        g.record.elem_size = t.elem_size;
        g.record.shape = t.shape;
      }
      Merged& g = tensors[it->second];
      if (!fresh && (g.record.dtype != t.dtype || g.record.shape != t.shape))
        throw InvalidArgument("tensor '" + t.name + "': " + rank_list(g.ranks) + " saved dtype " + g.record.dtype +
                              " shape " + to_string(g.record.shape) + " but rank " + std::to_string(m.rank) +
                              " saved dtype " + t.dtype + " shape " + to_string(t.shape));
      if (g.ranks.empty() || g.ranks.back() != m.rank) g.ranks.push_back(m.rank);
      auto& pieces = g.record.pieces;
      if (pieces.empty()) pieces = std::move(t.pieces);
      else pieces.insert(pieces.end(), std::make_move_iterator(t.pieces.begin()), std::make_move_iterator(t.pieces.end()));
    }
    for (const auto& v : m.values) {
      auto [it, fresh] = values.try_emplace(v.name, v.value, m.rank);
      if (!fresh && it->second.first != v.value)
        throw InvalidArgument("value '" + v.name + "': rank " + std::to_string(it->second.second) + " and rank " +
                              std::to_string(m.rank) + " saved different values");
    }
    c.packs.insert(c.packs.end(), std::make_move_iterator(m.packs.begin()), std::make_move_iterator(m.packs.end()));
  }
  for (Merged& g : tensors) {
    const std::string& name = g.record.name;
    if (values.count(name)) throw InvalidArgument("entry '" + name + "' is saved both as a tensor and as a value");
    // A replicated box appears once; its replicas must agree.
    auto& pieces = g.record.pieces;
    catalog::sort_pieces(pieces);
    size_t kept = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (kept > 0 && pieces[kept - 1].box == pieces[i].box) {
        if (pieces[kept - 1].chunk != pieces[i].chunk)
          throw InvalidArgument("tensor '" + name + "': replicas of box " + to_string(pieces[i].box) +
                                " hold different data (" + rank_list(g.ranks) + ")");
        continue;
      }
      if (kept != i) pieces[kept] = std::move(pieces[i]);
      ++kept;
    }
    pieces.resize(kept);
    std::vector<const Box*> boxes;
    boxes.reserve(pieces.size());
    for (const auto& p : pieces) boxes.push_back(&p.box);
    if (auto defect = plan::tiling_defect_of(g.record.shape, boxes))
      throw InvalidArgument("tensor '" + name + "' (saved by " + rank_list(g.ranks) +
                            "): shards do not tile the global shape " + to_string(g.record.shape) + ": " + *defect);
    c.tensors.push_back(std::move(g.record));
  }
  for (auto& [name, v] : values) c.values.push_back(catalog::ValueRecord{name, v.first});

  std::lock_guard lock(store.mu);
  try {
    store.catalog.commit(c, before_commit);
  } catch (const catalog::CatalogError& e) {
    if (!options.overwrite && store.catalog.find_checkpoint(checkpoint)) throw name_taken(store, checkpoint);
    throw StoreError(std::string("store '") + store.path + "': commit of '" + checkpoint + "' failed: " + e.what());
  }
}

}  // namespace tessera::engine
