#include "catalog/maintenance.h"

#include <bit>
#include <set>

#include "catalog/catalog.h"
#include "catalog/layout_rows.h"

namespace tessera::catalog {
namespace {

// A chunk row is live when some layout references it.
constexpr const char* kLive = "EXISTS (SELECT 1 FROM layout_chunks lc WHERE lc.chunk_id = c.chunk_id)";

PackUsage read_usage(const Statement& st) {
  return PackUsage{st.column_int(0), st.column_text(1), st.column_int(2), st.column_int(3), st.column_int(4)};
}

std::string usage_select() {
  return std::string("SELECT p.pack_id, p.name, p.size_bytes, "
                     "(SELECT count(*) FROM chunks c WHERE c.pack_id = p.pack_id AND ") +
         kLive +
         "), "
         "(SELECT coalesce(sum(c.stored_len), 0) FROM chunks c WHERE c.pack_id = p.pack_id AND " +
         kLive + ") FROM packs p";
}

}  // namespace

std::vector<std::string> checkpoint_names(Db& db) {
  Statement st = db.prepare("SELECT name FROM checkpoints ORDER BY checkpoint_id");
  std::vector<std::string> out;
  while (st.step()) out.push_back(st.column_text(0));
  return out;
}

std::vector<std::string> delete_checkpoints(Db& db, const std::vector<std::string>& names) {
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

std::vector<PackUsage> pack_usage(Db& db) {
  Statement st = db.prepare(usage_select() + " ORDER BY p.name");
  std::vector<PackUsage> out;
  while (st.step()) out.push_back(read_usage(st));
  return out;
}

std::optional<PackUsage> pack_usage(Db& db, const std::string& name) {
  Statement st = db.prepare(usage_select() + " WHERE p.name = ?1");
  st.bind(1, name);
  if (!st.step()) return std::nullopt;
  return read_usage(st);
}

int64_t orphan_chunk_count(Db& db) {
  Statement st = db.prepare(std::string("SELECT count(*) FROM chunks c WHERE NOT ") + kLive);
  st.step();
  return st.column_int(0);
}

int64_t drop_orphan_chunks(Db& db) {
  db.exec("DELETE FROM chunks WHERE NOT EXISTS (SELECT 1 FROM layout_chunks lc WHERE lc.chunk_id = chunks.chunk_id)");
  return db.changes();
}

std::vector<pack::ChunkEntry> live_chunks_in_pack(Db& db, int64_t pack_id) {
  Statement st = db.prepare(std::string("SELECT c.chunk_id, c.offset, c.stored_len, c.raw_len, c.codec, c.elem_size, "
                                        "c.stored_sum, c.block_sums FROM chunks c WHERE c.pack_id = ?1 AND ") +
                            kLive + " ORDER BY c.offset");
  st.bind(1, pack_id);
  std::vector<pack::ChunkEntry> out;
  while (st.step()) {
    pack::ChunkEntry e;
    e.id = chunk_from_blob(st.column_blob(0));
    e.offset = static_cast<uint64_t>(st.column_int(1));
    e.stored_len = static_cast<uint64_t>(st.column_int(2));
    e.raw_len = static_cast<uint64_t>(st.column_int(3));
    e.codec = static_cast<Codec>(st.column_int(4));
    e.elem_size = static_cast<uint8_t>(st.column_int(5));
    e.stored_sum = std::bit_cast<uint64_t>(st.column_int(6));
    e.block_sums = sums_from_blob(st.column_blob(7));
    out.push_back(std::move(e));
  }
  return out;
}

int64_t upsert_pack(Db& db, const std::string& name, uint64_t size_bytes) {
  Statement st = db.prepare(
      "INSERT INTO packs (name, size_bytes, created_at) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING pack_id");
  st.bind(1, name).bind(2, static_cast<int64_t>(size_bytes)).bind(3, now_iso8601());
  if (!st.step()) throw CatalogError("catalog: no pack id returned for '" + name + "'");
  const int64_t id = st.column_int(0);
  st.reset();
  return id;
}

bool move_chunk(Db& db, const ChunkId& id, int64_t from_pack, int64_t to_pack, uint64_t offset) {
  Statement st = db.prepare("UPDATE chunks SET pack_id = ?1, offset = ?2 WHERE chunk_id = ?3 AND pack_id = ?4");
  const std::string blob = chunk_blob(id);
  st.bind(1, to_pack).bind(2, static_cast<int64_t>(offset)).bind_blob(3, blob.data(), blob.size()).bind(4, from_pack);
  st.run();
  return db.changes() == 1;
}

bool delete_pack_if_empty(Db& db, int64_t pack_id) {
  Statement st = db.prepare(
      "DELETE FROM packs WHERE pack_id = ?1 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = ?1)");
  st.bind(1, pack_id).run();
  return db.changes() == 1;
}

bool pack_known(Db& db, const std::string& name) {
  Statement st = db.prepare("SELECT 1 FROM packs WHERE name = ?1");
  st.bind(1, name);
  return st.step();
}

}  // namespace tessera::catalog
