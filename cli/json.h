// Just enough JSON for the CLI's --json output: objects (keys kept in
// insertion order, so output is stable and reads like the table), arrays,
// strings, integers, reals, booleans and null. Written by hand to keep the CLI free of
// dependencies beyond the library.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::cli {

// `s` as a JSON string literal, quotes included. Control characters, quotes
// and backslashes are escaped; other bytes (UTF-8 included) pass through.
std::string json_quote(std::string_view s);

class Json {
 public:
  static Json string(std::string_view s);
  static Json number(int64_t n);
  static Json number(uint64_t n);
  // Finite values in the shortest form that reads back exactly; NaN and
  // infinities, which JSON cannot hold, as null.
  static Json real(double d);
  static Json null();
  static Json boolean(bool b);
  static Json array();
  static Json object();

  // Arrays: appends an element.
  Json& push(Json element);
  // Objects: appends a member (callers do not repeat keys).
  Json& set(std::string_view key, Json value);

  // Pretty-printed, two spaces per level. Arrays of scalars stay on one line
  // so shapes read as [64, 1024].
  void write(std::ostream& out, int depth = 0) const;

 private:
  enum class Kind { kScalar, kArray, kObject };
  explicit Json(Kind kind, std::string scalar = "") : kind_(kind), scalar_(std::move(scalar)) {}

  Kind kind_;
  std::string scalar_;  // already-encoded JSON text of a scalar
  std::vector<std::pair<std::string, Json>> members_;  // keys empty for arrays
};

// A shape as a JSON array of integers.
Json shape_json(const std::vector<int64_t>& shape);

}  // namespace tessera::cli
