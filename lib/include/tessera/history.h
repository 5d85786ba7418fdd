// A store's history: removing checkpoints, reclaiming the space they held
// (garbage collection), and comparing two checkpoints.
//
// remove_checkpoints() only edits the catalog; the chunks and packs the
// removed checkpoints used stay on disk until gc. Garbage collection runs in
// two steps so a caller can show what it would do: plan_gc() looks, run_gc()
// acts (re-checking every decision under the catalog's write lock).
//
// Crash safety (kill -9 at any point leaves every remaining checkpoint
// loadable; a later gc reclaims the leftovers) comes from the order of
// operations, which run_gc() keeps:
//   1. live chunks of packs being rewritten are copied into new packs, which
//      are made durable (fdatasync, rename, fsync of packs/);
//   2. one catalog transaction (BEGIN IMMEDIATE) points the chunks at the new
//      packs, drops orphan chunk rows and the rows of packs left empty;
//   3. only after that commit are the pack files deleted.
// A crash before 2 leaves new packs the catalog does not know; a crash
// between 2 and 3 leaves pack files the catalog no longer names. Both are
// "unknown packs" that a later gc deletes once older than its grace period.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/progress.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"

namespace tessera {

// ---- rm ------------------------------------------------------------------------

// Removes the named checkpoints from the catalog in one transaction, with
// their tensors, pieces and values. All or nothing: if any name is unknown,
// throws NotFoundError naming every unknown one and removes none. A name
// given twice counts once. Chunks and packs stay until gc.
// REQUIRES: store opened read-write (else StoreError).
void remove_checkpoints(Store& store, const std::vector<std::string>& names);

// ---- gc ------------------------------------------------------------------------

struct GcOptions {
  // Rewrite a pack when the stored bytes of its live chunks (chunks some
  // checkpoint references) are below this fraction of its size. Default
  // 0.75: a pack at least a quarter dead is rewritten, copying at most 3
  // bytes per byte freed (removing one checkpoint of several that share
  // packs then frees its bytes). 0 never rewrites, 1 rewrites every pack
  // with any dead chunk.
  double rewrite_below = 0.75;
  // In-flight protection. A save makes its packs durable in packs/ before it
  // commits; until then the catalog does not know them. gc deletes a pack
  // file the catalog does not know, and a file in tmp/, only when its
  // modification time is at least this old. Default 1 hour: a save must
  // commit within `grace` of writing its first pack, or its commit fails
  // cleanly ("pack ... is gone"). 0 deletes them all: only for a store no
  // one is saving to.
  std::chrono::seconds grace{3600};
  // Rewritten chunks go into new packs of about this many bytes (default 256 MiB).
  uint64_t pack_bytes = 256ull << 20;
  // Called as run_gc copies live chunks out of the packs it rewrites
  // (tessera/progress.h); total: the live bytes of the plan's rewrite packs.
  ProgressFn progress;
};

// A file gc would delete or rewrite.
struct GcFile {
  std::string name;         // file name under packs/ or tmp/
  uint64_t size_bytes = 0;
  uint64_t live_bytes = 0;  // catalog packs: stored bytes of referenced chunks
  uint64_t live_chunks = 0; // catalog packs: referenced chunks
};

struct GcPlan {
  std::vector<GcFile> delete_packs;   // catalog packs with no referenced chunk
  std::vector<GcFile> rewrite_packs;  // catalog packs whose live fraction is below rewrite_below
  std::vector<GcFile> unknown_packs;  // in packs/, unknown to the catalog, older than grace
  std::vector<GcFile> temp_files;     // in tmp/, older than grace
  uint64_t young_unknown_files = 0;   // unknown packs and temp files kept (younger than grace)
  uint64_t young_unknown_packs = 0;   // of which unknown packs: a save may be writing them now
  uint64_t orphan_chunks = 0;         // chunk rows no tensor piece references
  uint64_t rewrite_live_bytes = 0;    // bytes rewriting copies

  // Bytes deleted minus bytes rewriting writes again (pack footers aside).
  uint64_t bytes_freed() const;
  bool empty() const;  // nothing to delete, rewrite or drop
};

struct GcResult {
  std::vector<std::string> deleted_packs;    // catalog packs removed (rewritten ones included)
  std::vector<std::string> rewritten_packs;  // whose live chunks were copied to new packs
  std::vector<std::string> new_packs;        // written by the rewrite
  std::vector<std::string> removed_files;    // unknown packs and temp files removed
  uint64_t chunks_dropped = 0;               // orphan chunk rows dropped
  uint64_t chunks_moved = 0;                 // chunk rows pointed at a new pack
  // Bytes of files removed minus bytes of the new packs kept (negative when
  // a rewrite was abandoned after its copies were written).
  int64_t bytes_freed = 0;
  // Plan items left alone, each with why: a pack that gained references
  // since planning, a chunk that failed its checksum while being copied.
  std::vector<std::string> skipped;
};

// What gc would do now. Reads the catalog (in one read transaction) and
// lists packs/ and tmp/; changes nothing, so a read-only store is enough.
GcPlan plan_gc(const Store& store, const GcOptions& options = {});

// Carries out `plan` in the order described at the top of this file. Every
// decision is re-checked under the catalog's write lock (BEGIN IMMEDIATE),
// so a checkpoint committed after planning keeps its chunks: a pack that
// gained references is not deleted, and a rewrite whose pack gained
// references beyond what was copied is abandoned. Orphan chunk rows are
// dropped wherever they are.
//
// Remaining race, by design: a save looks up chunks (dedup) without the
// lock and commits later. If gc drops a chunk row that save found, and gc's
// transaction commits first, the save's commit fails cleanly ("chunk ... is
// neither in this save's packs nor committed in the store") and the catalog
// is unchanged; the caller saves again. Likewise a save whose unknown pack
// gc deleted (after the grace period) fails its commit.
//
// REQUIRES: store opened read-write (else StoreError); `plan` from plan_gc
// on this store with the same `options`. Throws StoreError on I/O failure;
// what was committed before the failure stays consistent.
GcResult run_gc(Store& store, const GcPlan& plan, const GcOptions& options = {});

// ---- diff ----------------------------------------------------------------------

struct DiffOptions {
  // Numeric statistics for changed float tensors (float32, float64, float16,
  // bfloat16) of the same dtype and shape. Default false.
  bool values = false;
  size_t threads = 0;  // for whole-tensor loads (0 = one per core; at most 1024, more throws InvalidArgument)
};

// Statistics over the elements of the changed pieces (see EntryDiff).
struct ValueStats {
  // max |b - a|; elements with equal bits count as 0 (NaN = NaN there);
  // NaN when a differing element is NaN on either side.
  double max_abs_diff = 0;
  // ||b - a|| / ||a|| over the same elements: inf when ||a|| is 0 and they
  // differ; NaN when a differing element is NaN, or `a` holds a NaN.
  double relative_l2 = 0;
  uint64_t elements = 0;     // elements compared
};

// One entry present in both checkpoints whose dtype, shape, kind or content differs.
struct EntryDiff {
  std::string name;
  // "dtype", "shape" (dtype equal), "content" (dtype and shape equal),
  // "kind" (tensor vs value, or value kinds), "value" (a value's contents).
  std::string change;
  std::string kind_a, kind_b;   // "tensor" or a value kind
  std::string dtype_a, dtype_b; // tensors only
  Shape shape_a, shape_b;       // tensors only
  // Content changes: the pieces of B's tensor whose bytes differ from A's
  // over the same box, and their raw bytes. Pieces match box for box when
  // both checkpoints used the same chunk grid and shards; then chunk ids
  // decide. Otherwise both whole tensors are loaded and compared (slower).
  // Other changes: every piece of B (all of a value's bytes).
  int64_t changed_chunks = 0;
  int64_t changed_bytes = 0;
  int64_t chunks = 0;          // pieces of B's tensor
  int64_t logical_bytes = 0;   // of B's entry
  bool has_stats = false;      // DiffOptions::values and a float dtype
  ValueStats stats;
};

struct DiffReport {
  std::string a, b;                  // checkpoint names
  std::vector<std::string> added;    // entries only in B (sorted)
  std::vector<std::string> removed;  // entries only in A (sorted)
  std::vector<EntryDiff> changed;    // sorted by name
  int64_t unchanged = 0;             // entries equal in both
  int64_t unchanged_bytes = 0;       // their logical bytes
  bool identical() const { return added.empty() && removed.empty() && changed.empty(); }
};

// Compares checkpoint `a` (before) with `b` (after) of one store. Throws
// NotFoundError naming an unknown checkpoint; with values, CorruptionError
// naming checkpoint, tensor, chunk and pack when a chunk read fails its checksum.
DiffReport diff_checkpoints(const Store& store, const std::string& a, const std::string& b,
                            const DiffOptions& options = {});

}  // namespace tessera
