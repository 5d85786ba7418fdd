// Files as the store uses them: append-only writers that fsync, durable
// renames, and positional readers. Every error names the file and the cause.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "tessera/error.h"

namespace tessera::io {

// An I/O failure; what() names the path and the OS error.
// A tessera::Error, so that callers (and the Python package, which maps
// tessera::Error to tessera.Error) catch it with the library's other errors.
class IoError : public Error {
 public:
  using Error::Error;
};

// Test hook: when set, every write consults it first; a non-zero return is
// treated as that errno (e.g. ENOSPC to simulate a full disk).
using WriteFaultHook = std::function<int(const std::string& path, size_t bytes)>;
void set_write_fault_hook(WriteFaultHook hook);

// Appends go through the page cache; every kWriteBehindBytes appended, the
// kernel is asked to start writing them out (Linux sync_file_range, without
// waiting), so the disk works while the caller computes the next bytes and
// sync() finds little left to write. Without it, a host with much memory
// keeps a whole save dirty in its page cache until the final fsyncs, and
// hashing and compressing never overlap the disk's work.
inline constexpr uint64_t kWriteBehindBytes = 8ull << 20;

class WriteFile {
 public:
  // Creates `path`; fails if it exists.
  explicit WriteFile(std::string path);
  ~WriteFile();
  WriteFile(const WriteFile&) = delete;
  WriteFile& operator=(const WriteFile&) = delete;

  void append(const void* data, size_t n);
  void sync();  // fdatasync: data durable before it returns
  void close();
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void write_behind();

  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t written_out_ = 0;  // bytes [0, written_out_) have been handed to writeback
};

class ReadFile {
 public:
  explicit ReadFile(std::string path);  // throws IoError if it cannot be opened
  ~ReadFile();
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  // The size when opened (the store's files do not change once named).
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at `offset`; a short read is an IoError that says
  // the file is truncated.
  void read_at(uint64_t offset, size_t n, void* dst) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// rename(from, to), then fsync the directory of `to` so the new name is durable.
void rename_durable(const std::string& from, const std::string& to);
void fsync_dir(const std::string& dir);
void make_dirs(const std::string& dir);
bool exists(const std::string& path);
void remove_file(const std::string& path);  // no error if it is already gone

// True when `dir` is on a memory filesystem (tmpfs, ramfs), where writing
// runs at memory speed; false if unknown.
bool on_memory_filesystem(const std::string& dir);

// Writes a whole small file durably (temp name, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace tessera::io
