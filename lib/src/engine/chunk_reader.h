// Reading single chunks outside load(): their stored bytes (gc copies them
// into new packs as they are) or their decoded raw bytes (diff compares
// values), each checked against the checksums the catalog records.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "pack/pack_reader.h"

namespace tessera {

// Why the catalog's record of a chunk cannot describe bytes of a pack of
// `pack_size` bytes, or "" when it can: its stored bytes must lie inside the
// pack (checked before a buffer is allocated for them: a damaged length must
// not exhaust memory), and a raw chunk's two lengths agree. Callers check
// raw_len against the box the chunk fills.
std::string extent_problem(const pack::ChunkEntry& e, uint64_t pack_size);

// Why `stored` (the chunk's stored_len stored bytes) fails its checksums, or
// "" when it passes: raw chunks by their block sums, others by stored_sum.
std::string stored_bytes_problem(const pack::ChunkEntry& e, const std::byte* stored);

// The chunk's stored bytes, checked. Throws CorruptionError naming the chunk
// and the pack (a read past the end of the pack included).
std::vector<std::byte> read_stored_chunk(const pack::PackReader& pack, const std::string& pack_name,
                                         const pack::ChunkEntry& e);

// Why the chunk whose stored bytes are `stored` is damaged ("" when it is
// not): checksums, decoding, and the decoded bytes against the chunk id.
std::string stored_chunk_problem(const pack::ChunkEntry& e, const std::byte* stored);

// The chunk's raw bytes, checked as read_raw_chunk does; on damage returns
// nothing and sets `problem` to what is wrong (a short pack included).
std::vector<std::byte> try_read_raw_chunk(const pack::PackReader& pack, const pack::ChunkEntry& e,
                                          std::string& problem);

// The chunk's raw bytes: stored bytes checked, decoded, and the result
// checked against the chunk id. Throws CorruptionError starting with
// `context` (e.g. "checkpoint 'a', tensor 'w'") and naming chunk and pack.
std::vector<std::byte> read_raw_chunk(const pack::PackReader& pack, const catalog::ChunkLocation& where,
                                      const std::string& context);

}  // namespace tessera
