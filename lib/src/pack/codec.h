// Chunk codecs. A chunk is stored raw or compressed; the choice is made per
// chunk and recorded in the pack footer and the catalog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/compression.h"

namespace tessera::pack {

// On-disk codec ids: never renumber; retired values stay reserved.
enum class Codec : uint8_t {
  kRaw = 0,          // stored bytes are the raw bytes
  kLz4 = 1,          // LZ4 block format over the raw bytes
  kShuffleLz4 = 2,   // byte shuffle with width elem_size, then LZ4 block format
  kShuffleHuffman = 3,  // byte shuffle, then each byte plane raw, constant or order-0
                        // Huffman coded (pack/huffman.h); layout in PACK_FORMAT.md
};

// The codec's name: "raw", "lz4", "shuffle-lz4", "shuffle-huffman" (the words of
// tessera/compression.h; names are for messages only, the pack format stores ids).
const char* codec_name(Codec c);
bool codec_known(uint8_t value);

// A byte buffer that is not zero-filled when allocated (chunks are megabytes;
// clearing them first costs as much as compressing them).
class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(size_t n) : data_(n ? new std::byte[n] : nullptr), size_(n) {}
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void shrink(size_t n) { size_ = n < size_ ? n : size_; }  // keeps the allocation

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t size_ = 0;
};

struct Encoded {
  Codec codec = Codec::kRaw;
  ByteBuffer bytes;  // empty when codec == kRaw: the raw bytes are stored as is
};

// Encodes `raw` as `compression` asks (tessera/compression.h; the memory
// filesystem rule of kAuto is the caller's); elem_size is the shuffle width.
Encoded encode_chunk(const std::byte* raw, size_t n, size_t elem_size, Compression compression);

// Decodes `stored` into exactly raw_len bytes at `out`. Throws
// std::runtime_error (with a message saying what is wrong) on malformed input.
void decode_chunk(Codec codec, const std::byte* stored, size_t stored_len, size_t elem_size,
                  std::byte* out, size_t raw_len);

// Byte shuffle: element i's byte b goes to position b * count + i. Exposed
// for tests and benchmarks.
void byte_shuffle(const std::byte* in, size_t n, size_t width, std::byte* out);
void byte_unshuffle(const std::byte* in, size_t n, size_t width, std::byte* out);

}  // namespace tessera::pack
