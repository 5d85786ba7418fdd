#include "engine/chunk_reader.h"

#include <algorithm>

#include "tessera/error.h"

namespace tessera {
namespace {

std::string culprit(const pack::ChunkEntry& e, const std::string& pack_name) {
  return "chunk " + e.id.hex() + " in pack '" + pack_name + "'";
}

}  // namespace

std::string stored_bytes_problem(const pack::ChunkEntry& e, const std::byte* stored) {
  if (e.codec != Codec::kRaw)
    return checksum64(stored, e.stored_len) == e.stored_sum ? "" : "checksum mismatch in the stored bytes";
  if (e.stored_len != e.raw_len) return "raw chunk with stored length != raw length";
  if (e.block_sums.size() != pack::block_count(e.raw_len)) return "block checksums missing";
  for (uint64_t b = 0; b < e.block_sums.size(); ++b) {
    const uint64_t start = b * pack::kBlockBytes, len = std::min(pack::kBlockBytes, e.raw_len - start);
    if (checksum64(stored + start, len) != e.block_sums[b])
      return "checksum mismatch in bytes " + std::to_string(start) + ".." + std::to_string(start + len);
  }
  return "";
}

std::vector<std::byte> read_stored_chunk(const pack::PackReader& pack, const std::string& pack_name,
                                         const pack::ChunkEntry& e) {
  std::vector<std::byte> stored(e.stored_len);
  try {
    pack.read(e.offset, e.stored_len, stored.data());
  } catch (const std::exception& ex) {
    throw CorruptionError(culprit(e, pack_name) + ": " + ex.what());
  }
  if (std::string problem = stored_bytes_problem(e, stored.data()); !problem.empty())
    throw CorruptionError(culprit(e, pack_name) + ": " + problem);
  return stored;
}

namespace {

// Checks stored bytes against the catalog's checksums and the chunk id,
// decoding them into `raw` when the codec is not raw (a raw chunk's stored
// bytes are its raw bytes: `raw` stays empty). "" when intact.
std::string check_stored(const pack::ChunkEntry& e, const std::byte* stored, std::vector<std::byte>& raw) {
  if (std::string problem = stored_bytes_problem(e, stored); !problem.empty()) return problem;
  const std::byte* bytes = stored;
  if (e.codec != Codec::kRaw) {
    raw.resize(e.raw_len);
    try {
      decode_chunk(e.codec, stored, e.stored_len, e.elem_size, raw.data(), raw.size());
    } catch (const std::exception& ex) {
      return std::string("cannot decode: ") + ex.what();
    }
    bytes = raw.data();
  }
  return chunk_id_of(bytes, e.raw_len) == e.id ? "" : "bytes do not match the chunk id";
}

}  // namespace

std::string stored_chunk_problem(const pack::ChunkEntry& e, const std::byte* stored) {
  std::vector<std::byte> raw;
  return check_stored(e, stored, raw);
}

std::string extent_problem(const pack::ChunkEntry& e, uint64_t pack_size) {
  if (e.offset > pack_size || e.stored_len > pack_size - e.offset)
    return "bytes " + std::to_string(e.offset) + "+" + std::to_string(e.stored_len) + " lie beyond the end of the pack (" +
           std::to_string(pack_size) + " bytes)";
  if (e.codec == Codec::kRaw && e.raw_len != e.stored_len) return "raw chunk with mismatched stored and raw lengths";
  return "";
}

std::vector<std::byte> try_read_raw_chunk(const pack::PackReader& pack, const pack::ChunkEntry& e,
                                          std::string& problem) {
  if (problem = extent_problem(e, pack.size()); !problem.empty()) return {};
  std::vector<std::byte> stored(e.stored_len);
  try {
    pack.read(e.offset, e.stored_len, stored.data());
  } catch (const std::exception& ex) {
    problem = ex.what();
    return {};
  }
  std::vector<std::byte> raw;
  if (problem = check_stored(e, stored.data(), raw); !problem.empty()) return {};
  return e.codec == Codec::kRaw ? stored : raw;
}

std::vector<std::byte> read_raw_chunk(const pack::PackReader& pack, const catalog::ChunkLocation& where,
                                      const std::string& context) {
  std::string problem;
  std::vector<std::byte> raw = try_read_raw_chunk(pack, where.entry, problem);
  if (!problem.empty()) throw CorruptionError(context + ": " + culprit(where.entry, where.pack) + ": " + problem);
  return raw;
}

}  // namespace tessera
