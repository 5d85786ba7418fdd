// Reading and writing the rows behind a checkpoint's tensors: layouts and
// tensors (schema/0003_layouts.sql, CATALOG.md). Used by
// Catalog (commit, queries), the upgrade from schema 1 and maintenance.
// Every function runs inside the caller's transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "catalog/layout.h"
#include "catalog/sqlite.h"
#include "geometry/box.h"

namespace tessera::catalog {

// Stored lengths of the chunks a commit just inserted, looked up once per
// distinct chunk of each new layout. An open-addressing table: a million
// entries cost one allocation and a lookup a cache line or two (chunk ids
// are hashes already, so their first bytes are the slot).
class FreshChunks {
 public:
  explicit FreshChunks(size_t capacity);  // at most this many add()s
  void add(const pack::ChunkId& id, int64_t stored_len);  // REQUIRES: id not added before
  std::optional<int64_t> find(const pack::ChunkId& id) const;
  size_t size() const { return size_; }
  int64_t stored_bytes() const { return stored_bytes_; }  // of every chunk added

 private:
  struct Slot {
    pack::ChunkId id;
    int64_t stored_len = -1;  // -1: empty
  };
  size_t slot_of(const pack::ChunkId& id) const { return pack::ChunkIdHash{}(id) & mask_; }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int64_t stored_bytes_ = 0;
};

// Adds tensors to the catalog, reusing a layout (and a tensors row) that an
// earlier checkpoint committed with the same contents.
class LayoutWriter {
 public:
  // `fresh`: the chunks this commit just inserted (the others are looked up
  // in `chunks`); may be null. `tensors_table` is "tensors" except while
  // upgrading from schema 1.
  LayoutWriter(Db& db, const FreshChunks* fresh, const std::string& tensors_table = "tensors");

  struct Written {
    int64_t tensor_id = 0;
    int64_t layout_id = 0;
    int64_t raw_bytes = 0;
    int64_t stored_bytes = 0;
    bool new_layout = false;
  };
  // Pieces in any order (a sorted list is not copied). Throws CatalogError
  // naming the tensor when a chunk of a new layout is unknown.
  Written put(const TensorRecord& t);

 private:
  std::optional<int64_t> stored_len(const pack::ChunkId& id);
  Db& db_;
  const FreshChunks* fresh_;
  Statement find_layout_, insert_layout_, find_tensor_;
  bool row_sums_;  // the tensors table has row_sum (schema 6); declared before insert_tensor_, which uses it
  Statement insert_tensor_, stored_len_;
  int64_t next_tensor_id_ = 1;
};

// tensors.row_sum (CATALOG.md, "Row checksums"): of the row's id, name and
// its layout's 16-byte digest.
int64_t tensor_row_sum(int64_t tensor_id, std::string_view name, std::string_view layout_digest);

// A checkpoint's tensor list and the totals its row records.
struct TensorList {
  std::vector<int64_t> ids;
  int64_t logical_bytes = 0;
  int64_t stored_bytes = 0;  // each distinct layout's once
  void add(const LayoutWriter::Written& w);

 private:
  std::unordered_set<int64_t> layouts_;
};

// Which pieces of a tensor to read, by name: none (nullopt), or only those
// overlapping a box (a box of another rank than the tensor's: all). Without
// a filter, all.
using ReadFilter = std::function<std::optional<Box>(const std::string& name)>;

// The tensors rows `ids` with their layouts (pieces decoded when asked, and
// only those `filter` wants when it is set), sorted by name. Throws
// CatalogError when an id has no row, CorruptionError when a row fails its
// checksum or (pieces read) a layout its digest.
std::vector<TensorRecord> read_tensors(Db& db, const std::vector<int64_t>& ids, bool with_pieces,
                                       const ReadFilter& filter = {});

// The ids in checkpoints.tensor_ids of a checkpoint: read from the catalog,
// or decoded from the column's blob (throws CatalogError naming the
// checkpoint when it is malformed).
std::vector<int64_t> checkpoint_tensor_ids(Db& db, int64_t checkpoint_id);
std::vector<int64_t> tensor_ids_of(int64_t checkpoint_id, std::string_view tensor_ids);

// Deletes the tensors rows no checkpoint holds and the layouts no tensors
// row uses. (Their chunks become orphans for gc: nothing else records them.)
void prune_unreferenced(Db& db);

}  // namespace tessera::catalog
