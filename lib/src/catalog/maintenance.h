// Catalog maintenance: removing checkpoints and the queries garbage
// collection runs. The caller holds a catalog::Transaction around them (a
// kWrite one for every function that changes rows), so what they read
// cannot change before it commits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/sqlite.h"
#include "pack/pack_format.h"

namespace tessera::catalog {

// Checkpoint names in commit order (oldest first).
std::vector<std::string> checkpoint_names(Db& db);

// Deletes the named checkpoints with their values (ON DELETE CASCADE), and
// the tensors rows and layouts no other checkpoint holds. Returns the names
// that do not exist, and then deletes nothing. Chunk and pack rows are left
// for gc.
std::vector<std::string> delete_checkpoints(Db& db, const std::vector<std::string>& names);

// A pack row and how much of it some layout still references.
struct PackUsage {
  int64_t id = 0;
  std::string name;
  int64_t size_bytes = 0;
  int64_t live_chunks = 0;  // chunk rows in this pack that a layout references
  int64_t live_bytes = 0;   // their stored bytes
};
std::vector<PackUsage> pack_usage(Db& db);  // every pack row, by name
std::optional<PackUsage> pack_usage(Db& db, const std::string& name);

// Chunk rows that no layout references.
int64_t orphan_chunk_count(Db& db);
int64_t drop_orphan_chunks(Db& db);  // returns how many were dropped

// Footer entries (as the catalog records them) of the referenced chunks
// stored in pack `pack_id`, by offset.
std::vector<pack::ChunkEntry> live_chunks_in_pack(Db& db, int64_t pack_id);

// Adds a pack row (created now) unless one of this name exists; returns
// the row's id. Same name, same bytes: pack names hash the whole file.
int64_t upsert_pack(Db& db, const std::string& name, uint64_t size_bytes);

// Points chunk `id`, stored in `from_pack`, at `offset` of `to_pack`. Returns
// false (changing nothing) when its row is not in `from_pack`.
bool move_chunk(Db& db, const ChunkId& id, int64_t from_pack, int64_t to_pack, uint64_t offset);

// Deletes the pack row when no chunk row points at it; returns whether it did.
bool delete_pack_if_empty(Db& db, int64_t pack_id);

// Whether a pack row of this name exists.
bool pack_known(Db& db, const std::string& name);

}  // namespace tessera::catalog
