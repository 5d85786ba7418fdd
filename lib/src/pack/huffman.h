// Order-0 canonical Huffman coding of one byte plane, for codec 3
// (shuffle-huffman, see codec.h and PACK_FORMAT.md).
//
// A coded plane of `count` bytes is stored as
//
//   [128 bytes]  code lengths: symbol 2j in the low nibble of byte j, symbol
//                2j+1 in the high nibble; 0 = symbol absent, else 1..kMaxCodeLen
//   [4 x u32 LE] byte lengths of the 4 streams
//   [stream 0][stream 1][stream 2][stream 3]
//
// Stream k codes the symbols [k*q, min((k+1)*q, count)) with q = ceil(count/4)
// (four independent streams let the decoder work on four at once). Codes are
// canonical (shorter codes first, then by symbol value) and written LSB
// first: each code's bits are reversed and appended at the next free bit of
// a little-endian bit string, and the last byte is zero-padded. A stream is
// exactly ceil(bits / 8) bytes. The code must be complete (Kraft sum 1) and
// use at least two symbols.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera::pack::huffman {

constexpr int kMaxCodeLen = 11;
constexpr size_t kStreams = 4;
constexpr size_t kHeaderBytes = 128 + 4 * kStreams;
// The largest plane this coder takes (stream lengths must fit in a u32).
constexpr size_t kMaxCount = size_t{1} << 31;

// What encode() will write for a plane, computed from its histograms.
struct Plan {
  uint8_t lengths[256] = {};
  uint64_t stream_bytes[kStreams] = {};
  size_t symbols = 0;  // distinct byte values in the plane
  size_t total = 0;    // kHeaderBytes + the streams; 0 when symbols < 2 (no code)
};

// Histograms the plane, builds a length-limited code and sizes the streams.
// count <= kMaxCount.
Plan plan(const uint8_t* in, size_t count);

// Estimated order-0 entropy, in bits per byte, of a few samples of the
// plane in[0], in[stride], ..., in[(count-1)*stride] (cheap: reads at most
// 16 Ki bytes of it).
double sampled_entropy(const uint8_t* in, size_t count, size_t stride = 1);

// Writes exactly plan.total bytes at `out`. `plan` must come from plan() on
// the same bytes, with total > 0.
void encode(const uint8_t* in, size_t count, const Plan& plan, uint8_t* out);

// Decodes a coded plane of `count` bytes from the front of `in` (at most
// `avail` bytes) into `out`; returns the number of bytes it took. Never reads
// or writes out of bounds; throws std::runtime_error on malformed input.
size_t decode(const uint8_t* in, size_t avail, uint8_t* out, size_t count);

}  // namespace tessera::pack::huffman
