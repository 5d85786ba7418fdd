#include "pack/chunk_check.h"

#include <algorithm>
#include <exception>

namespace tessera::pack {

std::string extent_problem(const ChunkEntry& e, uint64_t pack_size) {
  if (e.offset > pack_size || e.stored_len > pack_size - e.offset)
    return "bytes " + std::to_string(e.offset) + "+" + std::to_string(e.stored_len) + " lie beyond the end of the pack (" +
           std::to_string(pack_size) + " bytes)";
  if (e.codec == Codec::kRaw && e.raw_len != e.stored_len) return "raw chunk with mismatched stored and raw lengths";
  return "";
}

std::string block_sums_problem(const ChunkEntry& e, const std::byte* raw, uint64_t begin, uint64_t end) {
  if (e.block_sums.size() != block_count(e.raw_len)) return "block checksums missing";
  for (uint64_t b = begin / kBlockBytes; b * kBlockBytes < end; ++b) {
    const uint64_t start = b * kBlockBytes, len = std::min(kBlockBytes, e.raw_len - start);
    if (checksum64(raw + start, len) != e.block_sums[b])
      return "checksum mismatch in bytes " + std::to_string(start) + ".." + std::to_string(start + len);
  }
  return "";
}

std::string stored_bytes_problem(const ChunkEntry& e, const std::byte* stored) {
  if (e.codec != Codec::kRaw)
    return checksum64(stored, e.stored_len) == e.stored_sum ? "" : "checksum mismatch in the stored bytes";
  if (e.stored_len != e.raw_len) return "raw chunk with stored length != raw length";
  return block_sums_problem(e, stored, 0, e.raw_len);
}

std::string decode_problem(const ChunkEntry& e, const std::byte* stored, std::byte* raw) {
  try {
    decode_chunk(e.codec, stored, e.stored_len, e.elem_size, raw, e.raw_len);
  } catch (const std::exception& ex) {
    return std::string("cannot decode: ") + ex.what();
  }
  return "";
}

std::string id_problem(const ChunkEntry& e, const std::byte* raw) {
  return chunk_id_of(raw, e.raw_len) == e.id ? "" : "bytes do not match the chunk id";
}

namespace {

// Decoding a chunk that is not raw into `raw`, then its id.
std::string decoded_chunk_problem(const ChunkEntry& e, const std::byte* stored, std::byte* raw) {
  if (std::string problem = decode_problem(e, stored, raw); !problem.empty()) return problem;
  return id_problem(e, raw);
}

}  // namespace

std::string stored_chunk_problem(const ChunkEntry& e, const std::byte* stored, std::vector<std::byte>& raw) {
  if (std::string problem = stored_bytes_problem(e, stored); !problem.empty()) return problem;
  if (e.codec == Codec::kRaw) return id_problem(e, stored);
  raw.resize(e.raw_len);  // only once the stored bytes passed: a damaged length must not size a buffer
  return decoded_chunk_problem(e, stored, raw.data());
}

std::string stored_chunk_problem_into(const ChunkEntry& e, const std::byte* stored, std::byte* scratch) {
  if (std::string problem = stored_bytes_problem(e, stored); !problem.empty()) return problem;
  if (e.codec == Codec::kRaw) return id_problem(e, stored);
  return decoded_chunk_problem(e, stored, scratch);
}

std::string stored_chunk_problem(const ChunkEntry& e, const std::byte* stored) {
  std::vector<std::byte> raw;
  return stored_chunk_problem(e, stored, raw);
}

}  // namespace tessera::pack
