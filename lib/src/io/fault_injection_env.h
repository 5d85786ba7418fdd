// FaultInjectionEnv: an Env that wraps another, fails chosen calls, and
// simulates a power loss (after LevelDB's db/fault_injection_test.cc).
//
// Failing calls. Every call through this Env or a file it opened is
// numbered from 0 in the order it starts (calls()). A FaultRule sees each
// call before it runs; a non-zero return fails it with that errno (ENOSPC,
// EIO, ...), as io::IoError naming the operation and the path, without
// reaching the wrapped Env. lose_power_at(k) is the rule "call k and every
// later call fail with EIO", which is how a process sees the machine die.
// A rule may also sleep (to widen a window) and return 0.
//
// Power loss, drop_unsynced(). What survives is modelled per file and per
// directory entry, for the paths this Env touched since it was made (or
// since the last drop_unsynced); everything else counts as durable as found:
//   - A file's contents survive as of its last sync() (WritableFile or
//     RandomRWFile); a file never synced since it was created survives empty,
//     and a file that existed before it was first touched here survives as it
//     was then, until its first sync.
//   - A directory entry (a name -> a file) survives as of the last
//     sync_dir() of its directory: a creation, a rename's new name, a
//     rename's vanished old name and a removal are undone unless the
//     directory was synced after them. A rename between directories whose
//     target directory alone was synced leaves the file under both names.
//   - Directories themselves (make_dirs) are durable at once.
// drop_unsynced() rewrites the wrapped Env to that surviving state (files
// removed, rewritten with their durable bytes) and forgets what it tracked:
// the state it leaves is the new durable one. Close every file and store
// that uses this Env first. Reads are not part of the model: a power loss
// before a read leaves the same disk as one before the next write.
//
// Caveats: a file synced after it was renamed or removed is read back
// through the name it has now (a removed one keeps its last synced bytes);
// the model knows nothing of sector tearing or reordering within one file
// between two syncs (a power loss keeps a prefix of nothing: only synced
// bytes).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "io/env.h"

namespace tessera::io {

class FaultInjectionEnv final : public Env {
 public:
  enum class Op {
    kCreate, kOpen, kOpenRW, kAppend, kWrite, kRead, kTruncate, kSync, kClose, kSize,
    kRename, kSyncDir, kMakeDirs, kRemove, kExists, kStatus, kListDir
  };
  struct Call {
    uint64_t index;
    Op op;
    const std::string& path;
  };
  // Returns 0 to let the call run, else the errno it fails with.
  using FaultRule = std::function<int(const Call&)>;

  explicit FaultInjectionEnv(std::shared_ptr<Env> base);

  void set_rule(FaultRule rule);  // nullptr: no faults
  void lose_power_at(uint64_t call);
  uint64_t calls() const;  // calls started so far
  // Calls that change what is on disk (create, append, write, truncate,
  // sync, close, rename, sync_dir, make_dirs, remove); reads are not.
  static bool changes_disk(Op op);
  static const char* name_of(Op op);

  // Reverts the wrapped Env to what survives a power loss now (see the top).
  void drop_unsynced();

  // Over the posix Env only: open catalogs with SQLite's own VFS, so that
  // their I/O is neither counted, failed nor modelled, but locks work across
  // processes (tests that fork, or fail only pack writes). Default: false.
  void let_sqlite_use_os_files(bool yes) { sqlite_os_files_ = yes; }
  bool lets_sqlite_use_os_files() const override { return sqlite_os_files_ && base_->lets_sqlite_use_os_files(); }

  std::unique_ptr<WritableFile> create_file(const std::string& path) override;
  std::unique_ptr<RandomAccessFile> open_file(const std::string& path) override;
  std::unique_ptr<RandomRWFile> open_rw_file(const std::string& path, bool create) override;
  void rename(const std::string& from, const std::string& to) override;
  void sync_dir(const std::string& dir) override;
  void make_dirs(const std::string& dir) override;
  void remove_file(const std::string& path) override;
  bool exists(const std::string& path) override;
  std::optional<FileStatus> status(const std::string& path) override;
  std::vector<DirEntry> list_dir(const std::string& dir) override;
  bool on_memory_filesystem(const std::string& dir) override;

  // Used by this Env's files.
  void before(Op op, const std::string& path);
  void synced(const std::string& path);

 private:
  using Inode = uint64_t;
  // REQUIRES: mu_ held.
  void track(const std::string& path);
  std::string read_all(const std::string& path);

  std::shared_ptr<Env> base_;
  bool sqlite_os_files_ = false;
  mutable std::mutex mu_;
  FaultRule rule_;
  uint64_t calls_ = 0;
  Inode next_inode_ = 0;
  std::map<Inode, std::string> durable_bytes_;          // a file's bytes as of its last sync
  std::map<std::string, Inode> live_;                   // tracked names present now
  std::map<std::string, std::optional<Inode>> durable_; // tracked names after a power loss
};

}  // namespace tessera::io
