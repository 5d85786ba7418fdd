// A SQLite VFS over an Env (io/env.h): the catalog's database file and its
// rollback journal are read, written, synced and deleted through the store's
// Env, so an in-memory store keeps its catalog in memory and a simulated
// power loss (FaultInjectionEnv) drops the catalog's unsynced writes too.
//
// What it does as SQLite's unix VFS does: a new journal's directory is
// synced at the journal's first sync; a delete asked to sync its directory
// (xDelete's syncDir, set by synchronous = EXTRA) does; a zero-length file
// does not "exist" for xAccess. What differs:
//   - Locks (SHARED, RESERVED, PENDING, EXCLUSIVE) are kept in this process,
//     by path: connections of one process exclude each other as SQLite
//     expects, processes do not. Use the posix Env (SQLite's own VFS, real
//     locks) wherever several processes share a store.
//   - No shared memory (xShmMap): WAL mode is refused; the catalog uses a
//     rollback journal anyway (schema/CATALOG.md).
//   - Temporary files (no name) live in memory.
// An error the Env throws fails the SQLite call with SQLITE_IOERR_* (or
// SQLITE_FULL for ENOSPC); its message, naming the file, is kept for the
// thread and added to the CatalogError that follows (take_vfs_error()).
#pragma once

#include <memory>
#include <string>

#include "io/env.h"

struct sqlite3_vfs;

namespace tessera::catalog {

class EnvVfs {
 public:
  // Registers a VFS (not the default one) under a name of its own.
  explicit EnvVfs(std::shared_ptr<Env> env);
  ~EnvVfs();  // unregisters; REQUIRES: no connection uses it any more
  EnvVfs(const EnvVfs&) = delete;
  EnvVfs& operator=(const EnvVfs&) = delete;

  const char* name() const { return name_.c_str(); }

 private:
  std::shared_ptr<Env> env_;
  std::string name_;
  std::unique_ptr<sqlite3_vfs> vfs_;
};

// The message of the last Env error an EnvVfs turned into a SQLite error
// on this thread, cleared by the call; empty when there was none.
std::string take_vfs_error();

}  // namespace tessera::catalog
