// The exceptions tessera throws. Every message names the culprit: the store,
// the checkpoint, the tensor, the chunk or the pack.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace tessera {

// Base of every tessera error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The store cannot be used: not a store, not a tessera catalog, a catalog
// with a newer schema, or an I/O failure on the store itself.
class StoreError : public Error {
 public:
  using Error::Error;
};

// A named checkpoint or entry does not exist (unknown checkpoint, missing keys).
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// save() to a checkpoint name that the store already has.
class AlreadyExistsError : public Error {
 public:
  using Error::Error;
};

// Bad input from the caller: wrong shapes or dtypes, missing keys, shards
// that do not fit their global shape.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Stored data failed verification: a checksum mismatch, a truncated or
// missing pack. Nothing is returned in place of the damaged data.
class CorruptionError : public Error {
 public:
  using Error::Error;
};

// Which class above an error is. The distributed save sends it between ranks
// beside the message (lib/src/dist/failure.h), so every rank throws
// the same class whichever rank failed; the Python package numbers its
// exceptions alike (tessera._core.error_kinds). The numbers travel between
// processes: never renumber.
enum class ErrorKind : int {
  kError = 0,            // Error itself, or an exception that is none of the classes below
  kStore = 1,            // StoreError
  kNotFound = 2,         // NotFoundError
  kAlreadyExists = 3,    // AlreadyExistsError
  kInvalidArgument = 4,  // InvalidArgument
  kCorruption = 5,       // CorruptionError
};

// The kind of `e`: its class above; kError for Error, the library's
// internal subclasses of it (an I/O failure) and any other exception.
ErrorKind error_kind(const std::exception& e) noexcept;

// Throws the class of `kind` with message `what` (Error for a number this
// version does not know).
[[noreturn]] void throw_error(ErrorKind kind, const std::string& what);

}  // namespace tessera
