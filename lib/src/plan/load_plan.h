// Load planning: which saved record each requested entry gets, which regions
// of a target each saved piece fills, which chunks to look up, and how
// entries are grouped into waves under a staging budget. Pure: names, boxes,
// chunk ids and sizes in (the engine's load carries the plan out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "geometry/box.h"
#include "pack/hash.h"

namespace tessera::plan {

// The saved records a requested entry matched (indexes into the saved lists).
struct EntryMatch {
  std::optional<size_t> tensor;
  std::optional<size_t> value;
};

struct NameMatch {
  std::vector<EntryMatch> entries;      // one per requested name, in its order
  std::vector<std::string> missing;     // requested names nothing was saved under, in request order
  std::vector<std::string> unexpected;  // saved names nobody requested, sorted
};

// Matches requested entry names against the names of saved tensors and saved
// values. REQUIRES: each list sorted by name, without repeats (a state dict's
// entries; a checkpoint's records); one merge of the three lists.
NameMatch match_names(const std::vector<std::string_view>& requested, const std::vector<std::string_view>& tensors,
                      const std::vector<std::string_view>& values);

// One saved piece's contribution to a target box.
struct ReadRegion {
  size_t piece = 0;  // index into the saved pieces
  Box region;        // the piece's box ∩ the target box
};

struct TargetReads {
  std::vector<ReadRegion> regions;  // in piece order; pieces that miss the target have none
  int64_t covered = 0;              // elements of the target the regions cover, overlaps counted twice
};

// The regions of `target` that each saved piece (given by its box) holds.
// Committed pieces tile their tensor, so `covered` equals the target's
// volume unless the records are damaged.
TargetReads target_reads(const std::vector<const Box*>& pieces, const Box& target);

// The distinct chunks a list of reads needs, each to be looked up once.
struct ChunkLookups {
  std::vector<pack::ChunkId> chunks;  // distinct, in order of first use
  std::vector<size_t> first_read;     // per chunk: the first read that uses it
  std::vector<size_t> of_read;        // per read: its chunk's index in `chunks`
};
ChunkLookups chunk_lookups(const std::vector<pack::ChunkId>& read_chunks);

// Waves of consecutive entries, given the bytes each one stages: wave w is
// entries [bounds[w], bounds[w + 1]) (bounds is {0} when there are none). A
// wave holds at most `budget` staged bytes; an entry staging more than that is
// a wave of its own. Entries staging nothing cost nothing.
std::vector<size_t> waves(const std::vector<uint64_t>& staged_bytes, uint64_t budget);

}  // namespace tessera::plan
