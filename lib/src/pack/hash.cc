#include "pack/hash.h"

#include <cstring>
#include <stdexcept>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tessera::pack {

std::string ChunkId::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string s(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    s[2 * i] = digits[bytes[i] >> 4];
    s[2 * i + 1] = digits[bytes[i] & 15];
  }
  return s;
}

ChunkId ChunkId::from_hex(const std::string& hex) {
  if (hex.size() != 32) throw std::invalid_argument("chunk id '" + hex + "': want 32 hex digits");
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::invalid_argument("chunk id '" + hex + "': not hex");
  };
  ChunkId id;
  for (size_t i = 0; i < 16; ++i) id.bytes[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  return id;
}

size_t ChunkIdHash::operator()(const ChunkId& id) const {
  size_t h;
  std::memcpy(&h, id.bytes.data(), sizeof h);
  return h;
}

static ChunkId canonical(XXH128_hash_t h) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  ChunkId id;
  std::memcpy(id.bytes.data(), c.digest, 16);
  return id;
}

ChunkId chunk_id_of(const void* data, size_t n) { return canonical(XXH3_128bits(data, n)); }

uint64_t checksum64(const void* data, size_t n) { return XXH3_64bits(data, n); }

StreamHash128::StreamHash128() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamHash128::~StreamHash128() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void StreamHash128::update(const void* data, size_t n) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, n);
}
ChunkId StreamHash128::digest() const {
  return canonical(XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_)));
}

}  // namespace tessera::pack
