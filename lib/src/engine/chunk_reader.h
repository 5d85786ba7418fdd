// Reading single chunks outside load(): their stored bytes (gc copies them
// into new packs as they are) or their decoded raw bytes (diff compares
// values), each checked against the checksums the catalog records
// (pack/chunk_check.h).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "pack/chunk_check.h"
#include "pack/pack_cache.h"
#include "pack/pack_reader.h"

namespace tessera::engine {

// The chunk's stored bytes, checked. Throws CorruptionError naming the chunk
// and the pack (a read past the end of the pack included).
std::vector<std::byte> read_stored_chunk(const pack::PackReader& pack, const std::string& pack_name,
                                         const pack::ChunkEntry& e);

// The chunk's raw bytes, checked as read_raw_chunk does; on damage returns
// nothing and sets `problem` to what is wrong (a short pack included).
std::vector<std::byte> try_read_raw_chunk(const pack::PackReader& pack, const pack::ChunkEntry& e,
                                          std::string& problem);

// The chunk's raw bytes, read from its pack (opened through `packs`): stored
// bytes checked, decoded, and the result checked against the chunk id.
// Throws CorruptionError starting with `context` (e.g. "checkpoint 'a',
// tensor 'w'") and naming chunk and pack (one that cannot be opened included).
std::vector<std::byte> read_raw_chunk(pack::PackCache& packs, const catalog::ChunkLocation& where,
                                      const std::string& context);

}  // namespace tessera::engine
