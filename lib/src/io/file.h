// The io layer's error, and the write-behind policy of the posix Env. File
// and directory access itself goes through an Env (io/env.h).
#pragma once

#include <cstdint>
#include <string>

#include "io/env.h"
#include "tessera/error.h"

namespace tessera::io {

// An I/O failure; what() names the path and the OS error.
// A tessera::Error, so that callers (and the Python package, which maps
// tessera::Error to tessera.Error) catch it with the library's other errors.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what, int error_number = 0) : Error(what), error_number_(error_number) {}
  int error_number() const { return error_number_; }  // the errno, 0 when none applies

 private:
  int error_number_;
};

// Throws IoError("<what> '<path>': <strerror(err)>").
[[noreturn]] void fail(const std::string& what, const std::string& path, int err);

// Appends go through the page cache; every kWriteBehindBytes appended, the
// kernel is asked to start writing them out (Linux sync_file_range, without
// waiting), so the disk works while the caller computes the next bytes and
// sync() finds little left to write. Without it, a host with much memory
// keeps a whole save dirty in its page cache until the final fsyncs, and
// hashing and compressing never overlap the disk's work.
inline constexpr uint64_t kWriteBehindBytes = 8ull << 20;

}  // namespace tessera::io
