// Comparing the pieces (box + chunk id) of two tensor records: diff and
// show use it to tell whether two checkpoints share a tensor's chunks.
#pragma once

#include <vector>

#include "catalog/catalog.h"

namespace tessera::engine {

// Pieces in the catalog's canonical order (catalog/layout.h: by offsets).
// Layouts are stored in it, so this sorts only a record that came otherwise.
inline std::vector<catalog::Piece> in_canonical_order(std::vector<catalog::Piece> pieces) {
  if (!catalog::pieces_sorted(pieces)) catalog::sort_pieces(pieces);
  return pieces;
}

// True when both lists (in_canonical_order) hold the same boxes.
inline bool same_boxes(const std::vector<catalog::Piece>& a, const std::vector<catalog::Piece>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const catalog::Piece& x, const catalog::Piece& y) { return x.box == y.box; });
}

// True when both lists (in_canonical_order) hold the same boxes with the same chunks.
inline bool same_pieces(const std::vector<catalog::Piece>& a, const std::vector<catalog::Piece>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const catalog::Piece& x, const catalog::Piece& y) {
    return x.box == y.box && x.chunk == y.chunk;
  });
}

}  // namespace tessera::engine
