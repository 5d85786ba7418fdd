// The io layer's error. File and directory access itself goes through an Env
// (io/env.h).
#pragma once

#include <string>

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

}  // namespace tessera::io
