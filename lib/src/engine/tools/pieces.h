// Comparing the pieces (box + chunk id) of two tensor records: diff and
// show use it to tell whether two checkpoints share a tensor's chunks.
#pragma once

#include <algorithm>
#include <vector>

#include "catalog/catalog.h"

namespace tessera {

// Pieces in a canonical order (by offsets, then sizes): the catalog returns
// them in no particular order.
inline std::vector<catalog::Piece> sorted_by_box(std::vector<catalog::Piece> pieces) {
  std::sort(pieces.begin(), pieces.end(), [](const catalog::Piece& a, const catalog::Piece& b) {
    return a.box.offsets != b.box.offsets ? a.box.offsets < b.box.offsets : a.box.sizes < b.box.sizes;
  });
  return pieces;
}

// True when both lists (sorted_by_box) hold the same boxes.
inline bool same_boxes(const std::vector<catalog::Piece>& a, const std::vector<catalog::Piece>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const catalog::Piece& x, const catalog::Piece& y) { return x.box == y.box; });
}

// True when both lists (sorted_by_box) hold the same boxes with the same chunks.
inline bool same_pieces(const std::vector<catalog::Piece>& a, const std::vector<catalog::Piece>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const catalog::Piece& x, const catalog::Piece& y) {
    return x.box == y.box && x.chunk == y.chunk;
  });
}

}  // namespace tessera
