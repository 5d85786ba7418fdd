// The bytes a value holds, as describe and diff report them.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "tessera/value.h"

namespace tessera::engine {

// A byte string's or a string's length; 8 for a number.
inline int64_t value_size(const Value& v) {
  if (const auto* b = std::get_if<Bytes>(&v)) return static_cast<int64_t>(b->data.size());
  if (const auto* s = std::get_if<std::string>(&v)) return static_cast<int64_t>(s->size());
  return 8;
}

}  // namespace tessera::engine
