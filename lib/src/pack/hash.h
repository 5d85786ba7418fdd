// Chunk ids and checksums. A chunk id is the XXH3-128 of the chunk's raw
// (uncompressed, row-major) bytes; checksums of stored bytes and of 64 KiB
// blocks are XXH3-64.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera {

struct ChunkId {
  std::array<uint8_t, 16> bytes{};  // XXH128 canonical (big-endian) form

  std::string hex() const;
  static ChunkId from_hex(const std::string& hex);  // throws on bad input
  auto operator<=>(const ChunkId&) const = default;
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

}  // namespace tessera
