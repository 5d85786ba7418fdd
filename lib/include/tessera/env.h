// Env: every file and directory operation of a store goes through one of
// these (LevelDB's Env, for files only). Three implementations:
//
//   posix_env()           the operating system (the default): the behaviour
//                         the store always had, O_EXCL creation, write-behind,
//                         fdatasync, fsync of directories, lstat-based types.
//   new_mem_env()         files and directories in memory (tests, tools).
//   FaultInjectionEnv     (lib/src/io/fault_injection_env.h, internal) wraps
//                         another Env, fails chosen calls and simulates
//                         power loss.
//
// A store picks its Env through StoreOptions::env (tessera/store.h). The
// catalog's SQLite file I/O goes through the same Env, except on the posix
// Env, where SQLite's own unix VFS does the same system calls and adds the
// cross-process locks that several processes of one store need. An Env of
// your own keeps a store elsewhere; that store is for one process at a time.
//
// Errors: an operation that fails throws a tessera::Error (tessera/error.h)
// whose message names the path and the cause ("cannot write
// '/s/tmp/x.partial': No space left on device"); the library's own Envs
// throw its IoError subclass. Paths are plain strings joined with '/'.
// Every implementation is safe to call from several threads at once; one
// file object is used by one thread at a time, except RandomAccessFile,
// whose reads may run concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

// An append-only file being written. Destroying it without close() closes it
// (errors ignored); it never removes the file.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void append(const void* data, size_t n) = 0;
  // Data appended so far is durable when this returns (fdatasync): it
  // survives a power loss once the file's name is durable too (a sync_dir of
  // its directory after it was created or renamed there).
  virtual void sync() = 0;
  virtual void close() = 0;
  virtual uint64_t size() const = 0;  // bytes appended so far
  virtual const std::string& path() const = 0;
};

// A file opened for positional reads. read_at() may run from several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at `offset`; a short read is an IoError saying the
  // file is truncated.
  virtual void read_at(uint64_t offset, size_t n, void* dst) const = 0;
  // A hint that bytes [offset, offset + n) will be read soon: the file may
  // start reading them in the background (posix: POSIX_FADV_WILLNEED), so
  // that reading overlaps the caller's work. Never fails; by default does
  // nothing.
  virtual void prefetch(uint64_t /*offset*/, size_t /*n*/) const {}
  virtual const std::string& path() const = 0;
};

// A file read and written in place (SQLite's database and journal files, an
// export's output). read_at() and write_at() may run from several threads.
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;
  // Reads up to n bytes at `offset`; returns how many (fewer at the end).
  virtual size_t read_at(uint64_t offset, size_t n, void* dst) = 0;
  virtual void write_at(uint64_t offset, const void* data, size_t n) = 0;
  virtual void truncate(uint64_t size) = 0;
  virtual void sync() = 0;  // as WritableFile::sync()
  virtual uint64_t size() = 0;
  virtual const std::string& path() const = 0;
};

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

// What lstat says: a symbolic link is reported as kSymlink, never followed.
struct FileStatus {
  FileType type = FileType::kRegular;
  uint64_t size = 0;
  std::chrono::system_clock::time_point modified;
};

struct DirEntry {
  std::string name;  // without the directory
  FileType type = FileType::kRegular;  // not followed, as FileStatus
};

class Env {
 public:
  virtual ~Env() = default;

  // Creates `path` for appending; fails if it exists (O_EXCL).
  virtual std::unique_ptr<WritableFile> create_file(const std::string& path) = 0;
  // Opens `path` for reading; refuses anything but a regular file (a FIFO or
  // device in a pack's place must neither block nor be read).
  virtual std::unique_ptr<RandomAccessFile> open_file(const std::string& path) = 0;
  // Opens `path` for reading and writing in place; creates it when `create`
  // and it is missing.
  virtual std::unique_ptr<RandomRWFile> open_rw_file(const std::string& path, bool create) = 0;

  // rename(2): replaces `to` if it exists. Durable only after sync_dir() of
  // both directories.
  virtual void rename(const std::string& from, const std::string& to) = 0;
  // Makes the directory's entries durable: creations, renames and removals
  // in it survive a power loss from then on.
  virtual void sync_dir(const std::string& dir) = 0;
  // mkdir -p. New directories are durable at once in every Env here.
  virtual void make_dirs(const std::string& dir) = 0;
  // Removes a file; no error when it is already gone.
  virtual void remove_file(const std::string& path) = 0;

  // Whether anything is at `path` (a symbolic link is followed, as stat(2)).
  virtual bool exists(const std::string& path) = 0;
  // lstat(2); nullopt when nothing is there.
  virtual std::optional<FileStatus> status(const std::string& path) = 0;
  // The entries of `dir` (not "." and ".."), in no particular order.
  virtual std::vector<DirEntry> list_dir(const std::string& dir) = 0;

  // True when `dir` lives in memory (tmpfs, ramfs, a MemEnv), where writing
  // runs at memory speed; false if unknown.
  virtual bool on_memory_filesystem(const std::string& dir) = 0;

  // True when the catalog is to be opened with SQLite's own unix VFS instead
  // of through this Env: the posix Env (the same system calls, plus locks
  // that work across processes), and a FaultInjectionEnv over it told so.
  virtual bool lets_sqlite_use_os_files() const { return false; }
};

// The operating system's files; one shared instance.
std::shared_ptr<Env> posix_env();
// A new, empty in-memory file system ("/" exists). Files live as long as the
// Env; an open file keeps its bytes after removal, as on POSIX.
std::shared_ptr<Env> new_mem_env();

}  // namespace tessera
