#include "tessera/error.h"

namespace tessera {

ErrorKind error_kind(const std::exception& e) noexcept {
  if (dynamic_cast<const StoreError*>(&e)) return ErrorKind::kStore;
  if (dynamic_cast<const NotFoundError*>(&e)) return ErrorKind::kNotFound;
  if (dynamic_cast<const AlreadyExistsError*>(&e)) return ErrorKind::kAlreadyExists;
  if (dynamic_cast<const InvalidArgument*>(&e)) return ErrorKind::kInvalidArgument;
  if (dynamic_cast<const CorruptionError*>(&e)) return ErrorKind::kCorruption;
  return ErrorKind::kError;
}

void throw_error(ErrorKind kind, const std::string& what) {
  switch (kind) {
    case ErrorKind::kStore: throw StoreError(what);
    case ErrorKind::kNotFound: throw NotFoundError(what);
    case ErrorKind::kAlreadyExists: throw AlreadyExistsError(what);
    case ErrorKind::kInvalidArgument: throw InvalidArgument(what);
    case ErrorKind::kCorruption: throw CorruptionError(what);
    case ErrorKind::kError: break;
  }
  throw Error(what);
}

}  // namespace tessera
