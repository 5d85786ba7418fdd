// The pack file format (version 1). Documented in full in PACK_FORMAT.md
// beside this file; the constants here are the format.
//
// A pack is immutable once renamed into `packs/`. It is self-describing: the
// footer lists every chunk it holds, so the catalog's pack and chunk records
// can be rebuilt from the packs alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pack/codec.h"
#include "pack/hash.h"

namespace tessera::pack {

constexpr char kMagic[4] = {'T', 'S', 'P', 'K'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kTrailerBytes = 40;
// Raw chunks carry one XXH3-64 per block of this many raw bytes, so a load
// that reads part of a chunk can still verify what it read.
constexpr uint64_t kBlockBytes = 64 * 1024;

// One chunk as described by a pack footer (and mirrored in the catalog).
struct ChunkEntry {
  ChunkId id;                 // XXH3-128 of the raw bytes
  uint64_t offset = 0;        // of the stored bytes within the pack
  uint64_t stored_len = 0;
  uint64_t raw_len = 0;
  uint64_t stored_sum = 0;    // XXH3-64 of the stored bytes; raw chunks: of block_sums
  Codec codec = Codec::kRaw;
  uint8_t elem_size = 1;      // shuffle width
  std::vector<uint64_t> block_sums;  // raw chunks: XXH3-64 of each kBlockBytes block

  bool operator==(const ChunkEntry&) const = default;
};

// A finished pack file: its name and the chunks its footer lists.
struct PackInfo {
  std::string name;  // file name within the packs directory
  uint64_t size = 0;
  std::vector<ChunkEntry> chunks;
};

// Number of blocks a raw chunk of `raw_len` bytes has.
inline uint64_t block_count(uint64_t raw_len) { return (raw_len + kBlockBytes - 1) / kBlockBytes; }
std::vector<uint64_t> block_sums_of(const std::byte* raw, uint64_t raw_len);

// Serialize / parse the footer (the chunk entries). parse throws
// std::runtime_error describing the defect.
std::string encode_footer(const std::vector<ChunkEntry>& entries);
std::vector<ChunkEntry> decode_footer(const std::string& footer, uint64_t chunk_count);

// Pack file names are the hex XXH3-128 of the whole file plus this suffix.
constexpr const char* kPackSuffix = ".pack";

}  // namespace tessera::pack
