#include "engine/chunk_reader.h"

#include "tessera/error.h"

namespace tessera::engine {
namespace {

std::string culprit(const pack::ChunkEntry& e, const std::string& pack_name) {
  return "chunk " + e.id.hex() + " in pack '" + pack_name + "'";
}

}  // namespace

std::vector<std::byte> read_stored_chunk(const pack::PackReader& pack, const std::string& pack_name,
                                         const pack::ChunkEntry& e) {
  std::vector<std::byte> stored(e.stored_len);
  try {
    pack.read(e.offset, e.stored_len, stored.data());
  } catch (const std::exception& ex) {
    throw CorruptionError(culprit(e, pack_name) + ": " + ex.what());
  }
  if (std::string problem = pack::stored_bytes_problem(e, stored.data()); !problem.empty())
    throw CorruptionError(culprit(e, pack_name) + ": " + problem);
  return stored;
}

std::vector<std::byte> try_read_raw_chunk(const pack::PackReader& pack, const pack::ChunkEntry& e,
                                          std::string& problem) {
  if (problem = pack::extent_problem(e, pack.size()); !problem.empty()) return {};
  std::vector<std::byte> stored(e.stored_len);
  try {
    pack.read(e.offset, e.stored_len, stored.data());
  } catch (const std::exception& ex) {
    problem = ex.what();
    return {};
  }
  std::vector<std::byte> raw;
  if (problem = pack::stored_chunk_problem(e, stored.data(), raw); !problem.empty()) return {};
  return e.codec == pack::Codec::kRaw ? stored : raw;
}

std::vector<std::byte> read_raw_chunk(pack::PackCache& packs, const catalog::ChunkLocation& where,
                                      const std::string& context) {
  const pack::PackReader* pack = nullptr;
  try {
    pack = &packs.get(where.pack);
  } catch (const std::exception& e) {
    throw CorruptionError(context + ": " + culprit(where.entry, where.pack) + ": " + e.what());
  }
  std::string problem;
  std::vector<std::byte> raw = try_read_raw_chunk(*pack, where.entry, problem);
  if (!problem.empty()) throw CorruptionError(context + ": " + culprit(where.entry, where.pack) + ": " + problem);
  return raw;
}

}  // namespace tessera::engine
