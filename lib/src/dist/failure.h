// Failures as the coordination protocols carry them between ranks, and the
// rule by which the ranks agree on one.
//
// A failure travels as "<kind>:<message>": kind the error's class as its
// ErrorKind number in decimal (tessera/error.h: 4 is InvalidArgument, 0 the
// base Error), then the message. Every rank throws that class, so the same
// bad shard is an InvalidArgument on every rank, not only on the rank that
// saw it. A kind this version does not know is thrown as Error.
//
// When several ranks fail, the lowest failing rank's failure decides the
// class every rank throws (the distributed save, replicated load and the
// Python collectives all follow this rule; tessera/distributed.h's
// agree_on_failures states it once, defined in failure.cc).
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "tessera/distributed.h"
#include "tessera/error.h"

namespace tessera::dist {

// A failure: its class and message.
struct Failure {
  ErrorKind kind = ErrorKind::kError;
  std::string what;

  // `e`'s class (Error for an exception that is not tessera's) and message.
  static Failure of(const std::exception& e);
  // "<kind>:<message>".
  std::string encode() const;
  // The inverse of encode(); text that is not "<kind>:..." is passed on as an
  // Error with that text.
  static Failure decode(const std::string& s);
  [[noreturn]] void raise() const;
};

// The ErrorKind number of the exception `failure` holds (Error for one that
// is not a std::exception), or -1 when `failure` is null: what a rank shares
// with the others about how it fared.
int64_t kind_number(const std::exception_ptr& failure);

}  // namespace tessera::dist
