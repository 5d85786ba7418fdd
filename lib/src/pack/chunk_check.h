// Checks of one chunk against its entry (a pack footer's or a catalog
// row's): whether the entry fits its pack, the stored sum, the block sums
// over any byte range, decoding, and the chunk id. Each returns why the
// chunk fails, or "" when it passes; callers add which chunk and pack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pack/pack_format.h"

namespace tessera::pack {

// Why `e` cannot describe bytes of a pack of `pack_size` bytes: its stored
// bytes must lie inside the pack (checked before a buffer is allocated for
// them: a damaged length must not exhaust memory), and a raw chunk's two
// lengths agree. Callers check raw_len against the box the chunk fills.
std::string extent_problem(const ChunkEntry& e, uint64_t pack_size);

// Why raw bytes [begin, end) of a raw chunk fail their block sums. Each
// block the range touches is checked whole: `raw` points at the chunk's
// first byte and must hold those blocks.
std::string block_sums_problem(const ChunkEntry& e, const std::byte* raw, uint64_t begin, uint64_t end);

// Why `stored` (the chunk's stored_len stored bytes) fails its checksums:
// raw chunks by all their block sums, others by stored_sum.
std::string stored_bytes_problem(const ChunkEntry& e, const std::byte* stored);

// Decodes the stored bytes of a chunk that is not raw into its raw_len bytes
// at `raw`; why they cannot be.
std::string decode_problem(const ChunkEntry& e, const std::byte* stored, std::byte* raw);

// Why `raw` (raw_len bytes) is not the chunk its id names.
std::string id_problem(const ChunkEntry& e, const std::byte* raw);

// Why the chunk whose stored bytes are `stored` is damaged: its checksums,
// then (a codec other than raw) decoding them into `raw`, resized to
// raw_len, then the raw bytes against the chunk id. A raw chunk's raw bytes
// are its stored bytes: `raw` stays empty.
std::string stored_chunk_problem(const ChunkEntry& e, const std::byte* stored, std::vector<std::byte>& raw);
std::string stored_chunk_problem(const ChunkEntry& e, const std::byte* stored);
// As above, decoding into `scratch`, which must have room for raw_len bytes
// (a caller's buffer reused from chunk to chunk: nothing is allocated or
// zero-filled here).
std::string stored_chunk_problem_into(const ChunkEntry& e, const std::byte* stored, std::byte* scratch);

}  // namespace tessera::pack
