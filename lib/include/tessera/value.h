// Small non-tensor values a state dict can carry (step counters, RNG state,
// data-loader positions, configuration). They are stored inline in the
// catalog, so keep them small (kilobytes, not megabytes).
#pragma once

#include <cstdint>
#include <string>
#include <variant>

namespace tessera {

// Opaque bytes (e.g. a serialized RNG state).
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

// bytes | int | float | string
using Value = std::variant<Bytes, int64_t, double, std::string>;

// "bytes", "int", "float" or "string" — the names the catalog and CLI use.
const char* value_kind(const Value& v);

}  // namespace tessera
