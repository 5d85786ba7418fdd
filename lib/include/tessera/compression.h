// How a save stores its chunks: the `compression` option of every save
// (SaveOptions::compression, the CLI's and Python's `compression`).
//
// Each value has one name, used by C++, the CLI, Python and the docs alike:
//   auto  none  lz4  shuffle-lz4  shuffle-huffman
// The codecs a chunk may end up stored with (pack/codec.h: raw, lz4,
// shuffle-lz4, shuffle-huffman) use the same words; a chunk stored as is has
// the codec `raw` whatever the compression asked for.
#pragma once

#include <string>
#include <string_view>

namespace tessera {

// Whatever the value, a chunk that its codec would not shrink by at least
// 1/16 is stored raw.
enum class Compression {
  kAuto,  // "auto" (default): shuffle-huffman for 2- and 4-byte elements, shuffle-lz4 for other
          // widths (lz4 for 1-byte ones), each only where a sample of the chunk shows it pays
          // (shuffle-lz4 also where it beats shuffle-huffman on very redundant data); chunks under
          // 4 KiB raw; everything raw on a memory filesystem (tmpfs), where writing outruns every codec
  kNone,  // "none": raw chunks; fastest, and partial loads read only the bytes they need
  kLz4,   // "lz4": LZ4 on every chunk
  kShuffleLz4,      // "shuffle-lz4": byte shuffle by element width, then LZ4, on every chunk
  kShuffleHuffman,  // "shuffle-huffman": byte shuffle, then order-0 Huffman of each byte plane that
                    // shrinks (fast, best on bf16/fp16/fp32), on every chunk
};

// Every value, in declaration order (for help texts and tests).
inline constexpr Compression kCompressions[] = {Compression::kAuto, Compression::kNone, Compression::kLz4,
                                                Compression::kShuffleLz4, Compression::kShuffleHuffman};

// The value's name: "auto", "none", "lz4", "shuffle-lz4" or "shuffle-huffman".
std::string to_string(Compression compression);

// "auto, none, lz4, shuffle-lz4, shuffle-huffman": every name, for messages and help.
std::string compression_names();

// The value named `word` (exactly one of the names above, lower case).
// Throws InvalidArgument naming `word` and listing the valid names.
Compression parse_compression(std::string_view word);

}  // namespace tessera
