#include "pack/pack_format.h"

#include <bit>
#include <cstring>
#include <stdexcept>

namespace tessera::pack {
namespace {

void put(std::string& s, const void* p, size_t n) { s.append(static_cast<const char*>(p), n); }
template <class T>
void put_le(std::string& s, T v) {
  static_assert(std::endian::native == std::endian::little, "tessera assumes a little-endian host");
  put(s, &v, sizeof v);
}

class Cursor {
 public:
  explicit Cursor(const std::string& s) : s_(s) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  void get_bytes(void* dst, size_t n) {
    need(n);
    std::memcpy(dst, s_.data() + pos_, n);
    pos_ += n;
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  void need(size_t n) {
    if (pos_ + n > s_.size()) throw std::runtime_error("footer ends inside a chunk entry");
  }
  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<uint64_t> block_sums_of(const std::byte* raw, uint64_t raw_len) {
  std::vector<uint64_t> sums(block_count(raw_len));
  for (uint64_t b = 0; b < sums.size(); ++b) {
    uint64_t start = b * kBlockBytes;
    sums[b] = checksum64(raw + start, std::min(kBlockBytes, raw_len - start));
  }
  return sums;
}

std::string encode_footer(const std::vector<ChunkEntry>& entries) {
  std::string s;
  for (const auto& e : entries) {
    put(s, e.id.bytes.data(), 16);
    put_le<uint64_t>(s, e.offset);
    put_le<uint64_t>(s, e.stored_len);
    put_le<uint64_t>(s, e.raw_len);
    put_le<uint64_t>(s, e.stored_sum);
    put_le<uint8_t>(s, static_cast<uint8_t>(e.codec));
    put_le<uint8_t>(s, e.elem_size);
    put_le<uint16_t>(s, 0);
    put_le<uint32_t>(s, static_cast<uint32_t>(e.block_sums.size()));
    for (uint64_t b : e.block_sums) put_le<uint64_t>(s, b);
  }
  return s;
}

std::vector<ChunkEntry> decode_footer(const std::string& footer, uint64_t chunk_count) {
  Cursor c(footer);
  std::vector<ChunkEntry> out;
  for (uint64_t i = 0; i < chunk_count; ++i) {
    ChunkEntry e;
    c.get_bytes(e.id.bytes.data(), 16);
    e.offset = c.get<uint64_t>();
    e.stored_len = c.get<uint64_t>();
    e.raw_len = c.get<uint64_t>();
    e.stored_sum = c.get<uint64_t>();
    uint8_t codec = c.get<uint8_t>();
    if (!codec_known(codec)) throw std::runtime_error("chunk " + e.id.hex() + " has unknown codec " + std::to_string(codec));
    e.codec = static_cast<Codec>(codec);
    e.elem_size = c.get<uint8_t>();
    c.get<uint16_t>();
    uint32_t nblocks = c.get<uint32_t>();
    if (nblocks > footer.size() / 8) throw std::runtime_error("block count out of range");
    e.block_sums.resize(nblocks);
    for (auto& b : e.block_sums) b = c.get<uint64_t>();
    out.push_back(std::move(e));
  }
  if (!c.done()) throw std::runtime_error("footer has trailing bytes after its chunk entries");
  return out;
}

}  // namespace tessera::pack
