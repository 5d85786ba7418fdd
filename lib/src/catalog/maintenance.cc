#include "catalog/maintenance.h"

#include <algorithm>
#include <bit>
#include <set>

#include "catalog/catalog.h"
#include "catalog/layout_rows.h"

namespace tessera::catalog {

std::vector<std::string> checkpoint_names(Catalog& cat) {
  Db& db = cat.db();
  Statement st = db.prepare("SELECT name FROM checkpoints ORDER BY checkpoint_id");
  std::vector<std::string> out;
  while (st.step()) out.push_back(st.column_text(0));
  return out;
}

std::vector<std::string> delete_checkpoints(Catalog& cat, const std::vector<std::string>& names) {
  Db& db = cat.db();
  const std::set<std::string> unique(names.begin(), names.end());
  std::vector<std::string> unknown;
  Statement find = db.prepare("SELECT 1 FROM checkpoints WHERE name = ?1");
  for (const std::string& n : unique) {
    find.bind(1, n);
    if (!find.step()) unknown.push_back(n);
    find.reset();
  }
  if (!unknown.empty()) return unknown;
  Statement del = db.prepare("DELETE FROM checkpoints WHERE name = ?1");
  for (const std::string& n : unique) del.bind(1, n).run();
  prune_unreferenced(db);
  return {};
}

std::vector<pack::ChunkId> live_chunk_ids(Catalog& cat) {
  Db& db = cat.db();
  std::vector<pack::ChunkId> ids;
  Statement st = db.prepare("SELECT layout_id, shape, pieces FROM layouts");
  while (st.step()) {
    const Shape shape = shape_from_json(st.column_text(1));
    append_piece_chunks(st.column_blob(2), shape.size(), "layout " + std::to_string(st.column_int(0)), ids);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

const PackUsage* ChunkUsage::pack(const std::string& name) const {
  auto it = std::lower_bound(packs.begin(), packs.end(), name,
                             [](const PackUsage& u, const std::string& n) { return u.name < n; });
  return it != packs.end() && it->name == name ? &*it : nullptr;
}

ChunkUsage chunk_usage(Catalog& cat, const std::set<std::string>& entries_of) {
  Db& db = cat.db();
  ChunkUsage u;
  {
    Statement st = db.prepare("SELECT pack_id, name, size_bytes FROM packs ORDER BY name");
    while (st.step()) u.packs.push_back(PackUsage{st.column_int(0), st.column_text(1), st.column_int(2), 0, 0});
  }
  std::map<int64_t, size_t> index;                           // pack_id -> u.packs
  std::map<int64_t, std::vector<pack::ChunkEntry>*> wanted;  // pack_id -> u.live_entries
  for (size_t i = 0; i < u.packs.size(); ++i) {
    index[u.packs[i].id] = i;
    if (entries_of.count(u.packs[i].name)) wanted[u.packs[i].id] = &u.live_entries[u.packs[i].name];
  }
  const std::vector<pack::ChunkId> live = live_chunk_ids(cat);
  Statement st = db.prepare(std::string("SELECT ") + kChunkRowColumns + " FROM chunks c");
  while (st.step()) {
    const pack::ChunkId id = chunk_from_blob(st.column_blob_view(0));
    if (!std::binary_search(live.begin(), live.end(), id)) {
      u.orphans.push_back(id);
      continue;
    }
    const int64_t pack_id = st.column_int(1);
    if (auto it = index.find(pack_id); it != index.end()) {
      ++u.packs[it->second].live_chunks;
      u.packs[it->second].live_bytes += st.column_int(3);  // stored_len
    }
    if (auto it = wanted.find(pack_id); it != wanted.end()) it->second->push_back(read_chunk_row(st, 0));
  }
  std::sort(u.orphans.begin(), u.orphans.end());
  for (auto& [_, entries] : u.live_entries)
    std::sort(entries.begin(), entries.end(),
              [](const pack::ChunkEntry& a, const pack::ChunkEntry& b) { return a.offset < b.offset; });
  return u;
}

std::vector<PackUsage> pack_usage(Catalog& cat) { return chunk_usage(cat).packs; }

int64_t drop_chunks(Catalog& cat, const std::vector<pack::ChunkId>& ids) {
  Db& db = cat.db();
  Statement del = db.prepare("DELETE FROM chunks WHERE chunk_id = ?1");
  int64_t n = 0;
  for (const pack::ChunkId& id : ids) {
    del.bind_blob_static(1, id.bytes.data(), 16).run();
    n += db.changes();
  }
  return n;
}

int64_t upsert_pack(Catalog& cat, const std::string& name, uint64_t size_bytes, const std::string& created_at) {
  Db& db = cat.db();
  Statement st = db.prepare(
      "INSERT INTO packs (name, size_bytes, created_at) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING pack_id");
  st.bind(1, name).bind(2, static_cast<int64_t>(size_bytes)).bind(3, created_at.empty() ? now_iso8601() : created_at);
  if (!st.step()) throw CatalogError("catalog: no pack id returned for '" + name + "'");
  const int64_t id = st.column_int(0);
  st.reset();
  return id;
}

bool move_chunk(Catalog& cat, const pack::ChunkId& id, int64_t from_pack, int64_t to_pack, uint64_t offset) {
  Db& db = cat.db();
  Statement st = db.prepare("UPDATE chunks SET pack_id = ?1, offset = ?2 WHERE chunk_id = ?3 AND pack_id = ?4");
  const std::string blob = chunk_blob(id);
  st.bind(1, to_pack).bind(2, static_cast<int64_t>(offset)).bind_blob(3, blob.data(), blob.size()).bind(4, from_pack);
  st.run();
  return db.changes() == 1;
}

std::set<int64_t> delete_empty_packs(Catalog& cat, const std::set<int64_t>& pack_ids) {
  Db& db = cat.db();
  std::set<int64_t> used;
  {
    Statement st = db.prepare("SELECT DISTINCT pack_id FROM chunks");
    while (st.step()) used.insert(st.column_int(0));
  }
  std::set<int64_t> deleted;
  Statement del = db.prepare("DELETE FROM packs WHERE pack_id = ?1");
  for (int64_t id : pack_ids) {
    if (used.count(id)) continue;
    del.bind(1, id).run();
    if (db.changes() == 1) deleted.insert(id);
  }
  return deleted;
}

bool pack_known(Catalog& cat, const std::string& name) {
  Db& db = cat.db();
  Statement st = db.prepare("SELECT 1 FROM packs WHERE name = ?1");
  st.bind(1, name);
  return st.step();
}

}  // namespace tessera::catalog
