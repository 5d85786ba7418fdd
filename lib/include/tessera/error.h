// The exceptions tessera throws. Every message names the culprit: the store,
// the checkpoint, the tensor, the chunk or the pack.
#pragma once

#include <stdexcept>

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

}  // namespace tessera
