// The catalog: the SQLite database that is the single source of truth for
// what a store has committed. Schema: schema/*.sql, documented in
// schema/CATALOG.md.
//
// Writers open it read-write (rollback journal, synchronous=EXTRA, foreign
// keys on) and commit a checkpoint in one transaction. Readers open it
// read-only and plan their own loads from it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "catalog/env_vfs.h"
#include "catalog/layout.h"
#include "catalog/layout_rows.h"
#include "catalog/sqlite.h"
#include "geometry/box.h"
#include "pack/pack_format.h"
#include "tessera/value.h"

namespace tessera::catalog {

// PRAGMA application_id of every tessera catalog ("TSRA").
constexpr int32_t kApplicationId = 0x54535241;

// The catalog is newer than this build understands.
class SchemaTooNewError : public CatalogError {
 public:
  using CatalogError::CatalogError;
};

struct CheckpointInfo {
  int64_t id = 0;
  std::string name;
  std::string created_at;  // ISO 8601 UTC
  int64_t world_size = 1;
  std::string metadata;    // JSON object
  int64_t tensor_count = 0;
  int64_t value_count = 0;
  // Set at commit (CATALOG.md, "checkpoints"):
  int64_t logical_bytes = 0;  // sum of raw bytes over its tensors' pieces
  // Stored bytes of the chunks its tensors reference: each tensor layout's
  // distinct chunks, a chunk that two different tensors share counted for each.
  int64_t stored_bytes = 0;
  // Stored bytes of the chunks its commit added to the catalog (new chunk rows).
  int64_t added_bytes = 0;
  std::string save_token;  // NewCheckpoint::save_token of the save that committed it
};

// Where a chunk lives.
struct ChunkLocation {
  std::string pack;  // file name under packs/; empty when the row names a pack row that is missing
  int64_t pack_id = 0;
  pack::ChunkEntry entry;
};

struct ValueRecord {
  std::string name;
  Value value;
};

// Everything one checkpoint commits.
struct NewCheckpoint {
  std::string name;
  int64_t world_size = 1;
  std::string metadata = "{}";
  std::vector<pack::PackInfo> packs;  // durable packs written by this save
  // When set, commit() checks inside its transaction that every pack in
  // `packs` is still a file in this directory: gc deletes packs the catalog
  // does not know once they are older than its grace period, and a save that
  // took longer must fail rather than commit references to a deleted file.
  std::string packs_dir;
  std::vector<TensorRecord> tensors;
  std::vector<ValueRecord> values;
  // A checkpoint of the same name is deleted in the commit's transaction
  // (overwrite): readers see the old one until the new one is committed.
  bool replace_existing = false;
  // Recorded with the checkpoint: a distributed save's ranks agree on it, so
  // a rank that stopped waiting can tell whether its own save committed.
  std::string save_token;
};

class Catalog {
 public:
  enum class Mode { kReadOnly, kReadWrite };

  // Opens `path`. kReadWrite with create=true creates the file and applies
  // every migration; an existing catalog is migrated forward. A file that is
  // not a tessera catalog, or whose schema is newer than this build knows, is
  // refused with an error that says so. Its files are reached through `env`:
  // the posix Env lets SQLite use its own VFS; any other is reached through
  // an EnvVfs (catalog/env_vfs.h).
  static Catalog open(const std::string& path, Mode mode, bool create, std::shared_ptr<Env> env = posix_env());

  int schema_version();
  static int latest_schema_version();

  std::vector<CheckpointInfo> list_checkpoints();
  std::optional<CheckpointInfo> find_checkpoint(const std::string& name);
  // The id of the checkpoint committed just before `checkpoint_id` (the
  // greatest smaller id), if any.
  std::optional<int64_t> previous_checkpoint(int64_t checkpoint_id);

  // The tensors of a checkpoint with their pieces (ordered by name); pieces
  // are decoded only when asked for.
  std::vector<TensorRecord> tensors(int64_t checkpoint_id, bool with_pieces = true);
  // Only the pieces a caller needs (see ReadFilter, layout_rows.h).
  std::vector<TensorRecord> tensors(int64_t checkpoint_id, const ReadFilter& filter);
  std::optional<TensorRecord> tensor(int64_t checkpoint_id, const std::string& name);
  std::vector<ValueRecord> values(int64_t checkpoint_id);

  std::optional<ChunkLocation> locate(const pack::ChunkId& id);
  // Several at once; out[i] is ids[i]'s. Throws CorruptionError for a row
  // that names a missing pack row.
  std::vector<std::optional<ChunkLocation>> locate_all(const std::vector<pack::ChunkId>& ids);
  // `ids` ascending without repeats, looked up in one walk of the chunks
  // table in key order: an id near the last costs a step, a far one a seek,
  // so a million ids cost about a scan of the table, a few ids a lookup
  // each. out[i] is ids[i]'s row; a row naming a missing pack row comes back
  // with an empty `pack` (its pack_id says which).
  std::vector<std::optional<ChunkLocation>> locate_sorted(const std::vector<pack::ChunkId>& ids);
  bool has_chunk(const pack::ChunkId& id);
  // Chunk ids referenced by the named checkpoint.
  std::vector<pack::ChunkId> chunk_ids(int64_t checkpoint_id);

  // Commits in one transaction. Throws (leaving the catalog unchanged) if the
  // name exists (unless c.replace_existing) or a referenced chunk is neither
  // committed nor in `c.packs`. `before_commit`, when set, runs inside the
  // transaction once everything is written, just before COMMIT; if it throws,
  // the transaction is rolled back and its exception propagates.
  int64_t commit(const NewCheckpoint& c, const std::function<void()>& before_commit = {});

  // A transaction (see Transaction, sqlite.h) or a read scope for a run of
  // calls: what they read holds together, and kWrite keeps others out.
  Transaction transaction(Transaction::Kind kind) { return Transaction(db_, kind); }
  ReadScope read_scope() { return ReadScope(db_); }

  // SQLite's check of the file: its complaints (at most `max`), or none.
  std::vector<std::string> integrity_problems(int max = 100);

  // The connection, for this layer's functions (maintenance.h, layout_rows.h)
  // and white-box tests; the layers above go through the calls here.
  Db& db() { return db_; }
  Env& env() { return *env_; }

 private:
  Catalog(std::shared_ptr<Env> env, std::unique_ptr<EnvVfs> vfs, Db db)
      : env_(std::move(env)), vfs_(std::move(vfs)), db_(std::move(db)) {}
  void migrate(const std::string& path);
  Statement& cached(std::optional<Statement>& slot, const char* sql);
  std::shared_ptr<Env> env_;
  std::unique_ptr<EnvVfs> vfs_;  // null on the posix Env; outlives db_
  Db db_;
  // Prepared once: loads and saves look chunks up one at a time. Declared
  // after db_, so they are finalized before it closes.
  std::optional<Statement> locate_, locate_from_, has_chunk_;
};

// Row checksums (row_sum.h, CATALOG.md "Row checksums"): of a checkpoints
// row (with its tensor_ids blob) and of an entries row.
int64_t checkpoint_row_sum(const CheckpointInfo& c, std::string_view tensor_ids);
int64_t value_row_sum(int64_t checkpoint_id, const ValueRecord& v);
// An entries row's value: column `col` read as its kind says.
Value value_of_column(const Statement& st, int col, const std::string& kind);

// Chunk ids are stored as 16-byte blobs; block sums as little-endian u64 arrays.
std::string chunk_blob(const pack::ChunkId& id);
pack::ChunkId chunk_from_blob(std::string_view blob);  // throws CatalogError unless 16 bytes
std::vector<uint64_t> sums_from_blob(std::string_view blob);

// A chunks row as a SELECT list (the table aliased `c`), and its reader: the
// row's columns from `col` on, in this order.
inline constexpr const char* kChunkRowColumns =
    "c.chunk_id, c.pack_id, c.offset, c.stored_len, c.raw_len, c.codec, c.elem_size, c.stored_sum, c.block_sums";
pack::ChunkEntry read_chunk_row(const Statement& st, int col);

// Shapes and boxes are stored as JSON arrays of integers.
std::string shape_to_json(const Shape& s);
Shape shape_from_json(std::string_view json);  // throws CatalogError on malformed input
std::string now_iso8601();

}  // namespace tessera::catalog
