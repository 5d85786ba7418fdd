// Save planning: which pieces of its state a rank writes, which replica
// writes each piece of a replicated box, and how the pieces are grouped for
// the writers. Pure: shapes, boxes and sizes in, pieces out (the engine's
// write_shards carries the plan out).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "geometry/box.h"

namespace tessera::plan {

// One tensor of a rank's state as the plan sees it: its geometry, never its bytes.
struct SaveTensor {
  Shape global_shape;
  Box box;                    // the rank's shard, in global coordinates
  size_t elem_size = 0;       // > 0
  int64_t replica_index = 0;  // which of the ranks holding `box` this one is
  int64_t replica_count = 1;  // how many ranks hold `box`
  bool staged = false;        // its bytes are staged on first use (into memory that may be bounded)
};

// One chunk-sized piece a rank writes.
struct SavePiece {
  size_t tensor = 0;   // index into the plan's tensors
  Box box;             // a chunk-grid cell ∩ the tensor's box
  uint64_t bytes = 0;  // raw: volume × element size
};

// Limits of a group of consecutive pieces (see SavePlan::groups).
struct GroupLimits {
  size_t pieces = 64;
  uint64_t bytes = 8ull << 20;  // a group ends once it holds this many bytes
};

struct SavePlan {
  std::vector<SavePiece> pieces;  // in tensor order, each tensor's in row-major cell order
  // Group g is pieces [groups[g], groups[g + 1]): up to limits.pieces pieces,
  // closed once it holds limits.bytes, and never two different tensors when
  // either is staged (a group holds its tensors' bytes until it ends, so a
  // writer holds one staged tensor at a time and staging cannot deadlock).
  // {0} when there are no pieces.
  std::vector<size_t> groups;
  uint64_t bytes = 0;  // raw bytes of all pieces
};

// The replica that writes piece k of a box held by `replica_count` ranks
// (replicas enumerate the same pieces in the same order).
inline int64_t piece_owner(int64_t k, int64_t replica_count) { return k % replica_count; }

// The pieces of `tensors` this rank writes: each tensor's box cut by its
// chunk grid (ChunkGrid over global_shape, elem_size and chunk_bytes), keeping
// the pieces its replica owns. REQUIRES: chunk_bytes > 0, valid geometry
// (check_view), 0 <= replica_index < replica_count.
SavePlan plan_save(const std::vector<SaveTensor>& tensors, int64_t chunk_bytes, const GroupLimits& limits = {});

}  // namespace tessera::plan
