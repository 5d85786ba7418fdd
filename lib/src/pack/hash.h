// Chunk ids and checksums. A chunk id is the XXH3-128 of the chunk's raw
// (uncompressed, row-major) bytes; checksums of stored bytes and of 64 KiB
// blocks are XXH3-64.
#pragma once

#include <array>
#include <bit>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera::pack {

struct ChunkId {
  std::array<uint8_t, 16> bytes{};  // XXH128 canonical (big-endian) form

  std::string hex() const;
  static ChunkId from_hex(const std::string& hex);  // throws on bad input
  bool operator==(const ChunkId&) const = default;
  // The order of the bytes (SQLite's order for the blob), compared as two
  // big-endian 64-bit halves: sorting a million ids byte by byte costs more.
  std::strong_ordering operator<=>(const ChunkId& o) const {
    const uint64_t a = half(0), b = o.half(0);
    if (a != b) return a <=> b;
    return half(8) <=> o.half(8);
  }

  // The first 8 bytes as a number: ids in order have ascending prefixes.
  uint64_t prefix() const { return half(0); }

 private:
  uint64_t half(size_t at) const {
    uint64_t v;
    std::memcpy(&v, bytes.data() + at, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
  }
};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const;
};

ChunkId chunk_id_of(const void* data, size_t n);
uint64_t checksum64(const void* data, size_t n);

// Incremental XXH3-128 over a stream (used to name packs by their contents).
class StreamHash128 {
 public:
  StreamHash128();
  ~StreamHash128();
  StreamHash128(const StreamHash128&) = delete;
  StreamHash128& operator=(const StreamHash128&) = delete;
  void update(const void* data, size_t n);
  ChunkId digest() const;

 private:
  void* state_;
};

}  // namespace tessera::pack
