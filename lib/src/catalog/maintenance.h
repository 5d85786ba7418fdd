// Catalog maintenance: removing checkpoints and the queries garbage
// collection runs. The caller holds a transaction around them
// (Catalog::transaction; a kWrite one for every function that changes rows),
// so what they read cannot change before it commits.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "pack/hash.h"
#include "pack/pack_format.h"

namespace tessera::catalog {

// Checkpoint names in commit order (oldest first).
std::vector<std::string> checkpoint_names(Catalog& cat);

// Deletes the named checkpoints with their values (ON DELETE CASCADE), and
// the tensors rows and layouts no other checkpoint holds. Returns the names
// that do not exist, and then deletes nothing. Chunk and pack rows are left
// for gc.
std::vector<std::string> delete_checkpoints(Catalog& cat, const std::vector<std::string>& names);

// Liveness (CATALOG.md, "Garbage collection"): a chunk row is live when the
// pieces of some layout reference it. No table records that per chunk (a
// commit would pay a row per reference); gc decodes every layout instead.

// The chunk ids the layouts' pieces reference, sorted, each once. Throws
// CatalogError when a layout's pieces cannot be decoded: gc then fails
// before deleting anything.
std::vector<pack::ChunkId> live_chunk_ids(Catalog& cat);

// A pack row and how much of it some layout still references.
struct PackUsage {
  int64_t id = 0;
  std::string name;
  int64_t size_bytes = 0;
  int64_t live_chunks = 0;  // chunk rows in this pack that a layout references
  int64_t live_bytes = 0;   // their stored bytes
};

// How the chunk rows divide into live and orphan ones, per pack: one pass
// over the layouts and one over the chunk rows.
struct ChunkUsage {
  std::vector<PackUsage> packs;         // every pack row, by name
  std::vector<pack::ChunkId> orphans;   // chunk rows no layout references, sorted
  // The live chunk rows (footer entries as the catalog records them, by
  // offset) of the packs named in chunk_usage's `entries_of`.
  std::map<std::string, std::vector<pack::ChunkEntry>> live_entries;

  const PackUsage* pack(const std::string& name) const;  // null when there is no such row
};
ChunkUsage chunk_usage(Catalog& cat, const std::set<std::string>& entries_of = {});

std::vector<PackUsage> pack_usage(Catalog& cat);  // chunk_usage(db).packs

// Deletes the chunk rows `ids`; returns how many there were.
int64_t drop_chunks(Catalog& cat, const std::vector<pack::ChunkId>& ids);

// Adds a pack row (created at `created_at`, ISO 8601; now when empty) unless
// one of this name exists; returns the row's id. Same name, same bytes: pack
// names hash the whole file.
int64_t upsert_pack(Catalog& cat, const std::string& name, uint64_t size_bytes, const std::string& created_at = "");

// Points chunk `id`, stored in `from_pack`, at `offset` of `to_pack`. Returns
// false (changing nothing) when its row is not in `from_pack`.
bool move_chunk(Catalog& cat, const pack::ChunkId& id, int64_t from_pack, int64_t to_pack, uint64_t offset);

// Deletes the rows of the packs `pack_ids` that no chunk row points at (one
// pass over the chunk rows); returns the ids it deleted.
std::set<int64_t> delete_empty_packs(Catalog& cat, const std::set<int64_t>& pack_ids);

// Whether a pack row of this name exists.
bool pack_known(Catalog& cat, const std::string& name);

}  // namespace tessera::catalog
