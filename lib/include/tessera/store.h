// A store: a directory holding one catalog (catalog.db) and many immutable
// packs (packs/*.pack). It holds many checkpoints; checkpoints share chunks.
//
//   STORE/catalog.db   SQLite catalog, the single source of truth
//   STORE/packs/       immutable, content-addressed pack files
//   STORE/tmp/         packs being written (garbage if a save dies)
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace tessera {

// Where the store's files live: every file and directory access of the store,
// its catalog's included, goes through one Env (tessera/env.h: the posix
// file system, an in-memory one, or an implementation of your own).
class Env;

struct StoreOptions {
  // Create the directory and catalog if missing. Default: true for
  // read-write opens. Ignored when read_only.
  bool create_if_missing = true;
  // Open the catalog read-only (loads, CLI inspection). Several processes
  // may read while one writes. Default: false.
  bool read_only = false;
  // The file system the store lives in. Default (null): the operating
  // system's (posix_env()). Several processes may share a store only
  // there: other Envs lock the catalog within one process.
  std::shared_ptr<Env> env;
};

struct CheckpointSummary {
  std::string name;
  std::string created_at;  // ISO 8601 UTC
  int64_t world_size = 1;
  int64_t tensors = 0;
  int64_t values = 0;
  int64_t logical_bytes = 0;  // raw bytes of all tensors
  // Stored bytes of the chunks it references (each tensor's distinct chunks;
  // a chunk two different tensors share is counted for each).
  int64_t stored_bytes = 0;
  // Stored bytes of the chunks its save added to the store (chunks the store
  // did not hold yet), recorded at commit: removing an earlier checkpoint
  // does not change it.
  int64_t added_bytes = 0;
  std::string metadata;       // JSON object
};

class Store {
 public:
  // Opens the store at `path`. Throws StoreError naming the path when it is
  // not a store (and creation is off), is not a tessera catalog, or has a
  // catalog schema newer than this build.
  static Store open(const std::string& path, const StoreOptions& options = {});
  static Store open_read_only(const std::string& path, std::shared_ptr<Env> env = nullptr);

  const std::string& path() const;
  bool read_only() const;

  std::vector<CheckpointSummary> checkpoints() const;
  // Throws NotFoundError naming the checkpoint and the store.
  CheckpointSummary checkpoint(const std::string& name) const;

  // What the store holds (lib/src/engine/store_impl.h). Opaque here: the
  // library reaches it through StoreAccess, never through this class's API.
  struct Impl;

 private:
  friend struct StoreAccess;
  explicit Store(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace tessera
