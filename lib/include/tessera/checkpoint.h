// save() and load(): a state dict to and from a checkpoint of a store.
//
// save() writes each tensor as chunks on its chunk grid (computed from the
// global shape and dtype only), deduplicates chunks already in the store,
// makes the packs durable, and commits the checkpoint in one catalog
// transaction. A save that fails or is killed leaves no visible checkpoint.
//
// load() fills the state dict's pre-allocated tensors in place. Each may be
// any box of the saved global tensor (resharding): load reads only chunks
// that intersect the box and, of raw chunks, only the byte ranges it needs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/compression.h"
#include "tessera/progress.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"

namespace tessera {

class ControlPlane;  // tessera/distributed.h
class Collective;    // tessera/replicas.h

struct SaveOptions {
  // Target bytes per chunk (default 4 MiB). Smaller chunks dedup and
  // reshard at finer grain; larger ones mean fewer catalog rows.
  int64_t chunk_bytes = 4 << 20;
  // Roll over to a new pack after this many bytes (default 256 MiB).
  uint64_t pack_bytes = 256ull << 20;
  // How chunks are stored (tessera/compression.h; default auto).
  Compression compression = Compression::kAuto;
  // Reference chunks the store already holds instead of writing them (default true).
  bool dedup = true;
  // Threads that copy, hash and compress (0 = one per core). At most 1024
  // (every `threads` option of the library): more throws InvalidArgument
  // naming `threads`, before any thread starts.
  size_t threads = 0;
  // Saving to a name that exists replaces it: the old checkpoint stays
  // loadable until the new one commits, then goes in the same transaction
  // (its chunks are shared with the new one or left to gc). A failed save
  // leaves it as it was. Default false: names are immutable, and such a save
  // throws AlreadyExistsError.
  bool overwrite = false;
  // Recorded with the checkpoint (a JSON object).
  std::string metadata = "{}";
  // Called as this process's pieces are hashed and written or found already
  // stored (tessera/progress.h); total: their raw bytes.
  ProgressFn progress;
  // Retention: after a successful commit, remove the oldest checkpoints (by
  // commit order) so at most this many remain; the one just saved is never
  // removed. 0 (default) keeps all; a negative value throws InvalidArgument
  // before anything is written. Then the packs left without a live
  // chunk are deleted (a gc that rewrites nothing; SaveResult::freed_bytes),
  // unless another save is writing packs to the store right then (a young
  // pack the catalog does not know): the next retention, or gc, frees them.
  // Packs still partly live stay for gc (tessera/history.h) to rewrite. If
  // removing fails, save throws StoreError saying the checkpoint was committed.
  int64_t keep_last = 0;
  // Distributed save: the control plane shared by the job's ranks
  // (tessera/distributed.h), or null (default) for a single-process save.
  // With a plane, save() is collective over its ranks: each calls it with
  // its own shards and its own handle to the same store, and rank 0 commits
  // for all. Must outlive the call.
  ControlPlane* plane = nullptr;
  // With `plane`: how long a rank waits for the others (default 5 minutes).
  // A rank that has not reported by then is taken as dead and the save
  // fails. A rank that waited twice this for rank 0's outcome aborts the
  // save, unless rank 0 has already decided to commit: then it waits once
  // more and, if rank 0 stays silent, reports what the catalog holds.
  // Ignored without a plane.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

struct SaveResult {
  uint64_t logical_bytes = 0;     // raw bytes of every tensor piece saved
  uint64_t written_bytes = 0;     // stored bytes written into new packs
  uint64_t chunks = 0;            // chunk references recorded
  uint64_t chunks_written = 0;    // of which written now (the rest deduplicated)
  uint64_t packs = 0;             // packs written
  std::vector<std::string> removed;  // checkpoints keep_last removed, oldest first (coordinator only)
  uint64_t freed_bytes = 0;          // bytes of packs deleted after that removal (coordinator only)
};

// REQUIRES: store opened read-write. Throws AlreadyExistsError if
// `checkpoint` exists (unless options.overwrite), InvalidArgument naming the
// entry for malformed input.
//
// With options.plane set, the save is the distributed one: see
// tessera/distributed.h for what every rank must do and what it throws.
// REQUIRES then: 0 <= plane->rank() < plane->world_size(); otherwise throws
// InvalidArgument naming both, before the plane is used (the other ranks
// then fail after options.timeout).
SaveResult save(const StateDict& state, Store& store, const std::string& checkpoint,
                const SaveOptions& options = {});

struct LoadOptions {
  // Every state-dict key must be in the checkpoint (default true). With
  // false, missing keys are skipped and reported in LoadResult.
  bool strict = true;
  // Check every chunk read against its checksum (default true).
  bool verify = true;
  // Allow a saved dtype that differs from the target's (needs the LibTorch
  // layer to convert). Default false: a dtype mismatch is an error.
  bool allow_cast = false;
  size_t threads = 0;  // 0 = one per core; at most 1024 (more throws InvalidArgument)
  // Entries whose bytes land in host staging first (device tensors, casts)
  // are loaded in waves of at most this many staged bytes (default 256 MiB;
  // an entry larger than that is a wave of its own). Each wave's entries
  // finish (e.g. queue their host-to-device copies) before the next wave is
  // read, which bounds host memory and overlaps those copies with reading.
  uint64_t max_staging_bytes = 256ull << 20;
  // Called as target bytes are filled (tessera/progress.h); total: the bytes
  // of the targets found in the checkpoint.
  ProgressFn progress;
  // Replicated load: the process group of the ranks that hold the same
  // shards (tessera/replicas.h; tessera/c10d.h's collective() makes one over
  // a c10d::Backend), or null (default) for a plain load. With a group,
  // entries with view.replica_count > 1 are read once across it and
  // broadcast, and load() is collective over its ranks (tessera/replicas.h
  // says what every rank must ask for). Must outlive the call.
  Collective* replicas = nullptr;
};

struct LoadResult {
  std::vector<std::string> missing_keys;     // asked for, not in the checkpoint
  std::vector<std::string> unexpected_keys;  // in the checkpoint, not asked for
  uint64_t bytes_read = 0;    // bytes read from packs
  uint64_t chunks_read = 0;
};

// Throws NotFoundError for an unknown checkpoint or (strict) missing keys,
// InvalidArgument naming the tensor for a shape or dtype mismatch,
// CorruptionError naming checkpoint, tensor, chunk and pack on damage.
//
// With options.replicas set, the load is the replicated one: see
// tessera/replicas.h for what every rank must do and what it throws.
LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint,
                const LoadOptions& options = {});

}  // namespace tessera
