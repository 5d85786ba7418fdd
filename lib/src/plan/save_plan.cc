#include "plan/save_plan.h"

#include "geometry/chunk_grid.h"

namespace tessera::plan {
namespace {

// Group starts (and the end) of `pieces`, as SavePlan::groups describes.
std::vector<size_t> group_pieces(const std::vector<SavePiece>& pieces, const std::vector<SaveTensor>& tensors,
                                 const GroupLimits& limits) {
  std::vector<size_t> starts{0};
  for (size_t i = 0, bytes = 0; i < pieces.size(); ++i) {
    const size_t first = starts.back();
    const size_t a = pieces[i].tensor, b = i > 0 ? pieces[i - 1].tensor : a;
    const bool other_staged_tensor = i > first && a != b && (tensors[a].staged || tensors[b].staged);
    if (i > first && (i - first == limits.pieces || bytes >= limits.bytes || other_staged_tensor)) {
      starts.push_back(i);
      bytes = 0;
    }
    bytes += pieces[i].bytes;
  }
  if (!pieces.empty()) starts.push_back(pieces.size());
  return starts;
}

}  // namespace

SavePlan plan_save(const std::vector<SaveTensor>& tensors, int64_t chunk_bytes, const GroupLimits& limits) {
  SavePlan plan;
  for (size_t index = 0; index < tensors.size(); ++index) {
    const SaveTensor& t = tensors[index];
    ChunkGrid grid(t.global_shape, t.elem_size, chunk_bytes);
    int64_t k = 0;
    grid.for_each_piece(t.box, [&](const Box& piece) {
      if (piece_owner(k++, t.replica_count) != t.replica_index) return;
      const uint64_t bytes = static_cast<uint64_t>(piece.volume()) * t.elem_size;
      plan.pieces.push_back(SavePiece{index, piece, bytes});
      plan.bytes += bytes;
    });
  }
  plan.groups = group_pieces(plan.pieces, tensors, limits);
  return plan;
}

}  // namespace tessera::plan
