// Row checksums (schema 6): the catalog rows that loads depend on carry an
// XXH3-64 of their fields, so that a damaged row (a flipped bit, a row an
// index misdirects to) is refused instead of yielding other data. Which
// fields each table covers, and the encoding: schema/CATALOG.md, "Row
// checksums". Chunk rows need none: loads check the bytes they name against
// the chunk id (and look the id up again in the row they get).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "pack/hash.h"

namespace tessera::catalog {

class RowSum {
 public:
  RowSum& add(int64_t v) {
    char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<char>(static_cast<uint64_t>(v) >> (8 * i));
    buf_.append(le, 8);
    return *this;
  }
  // Length first (as add(int64_t)), so that adjacent fields cannot trade bytes.
  RowSum& add(std::string_view s) {
    add(static_cast<int64_t>(s.size()));
    buf_.append(s);
    return *this;
  }
  // The XXH3-64 of the fields added, as the signed INTEGER column holds it.
  int64_t value() const {
    const uint64_t h = pack::checksum64(buf_.data(), buf_.size());
    int64_t out;
    std::memcpy(&out, &h, 8);
    return out;
  }

 private:
  std::string buf_;
};

}  // namespace tessera::catalog
