// Tensor layouts: the byte formats the catalog stores in BLOB columns.
// Documented in schema/CATALOG.md ("Layouts").
//
// A layout is a tensor's dtype, global shape and pieces (the boxes that tile
// it and the chunk holding each). It is content-addressed: checkpoints that
// hold a tensor unchanged share one layout row, so the catalog grows with what
// changed, not with the whole state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "geometry/box.h"
#include "pack/hash.h"

namespace tessera::catalog {

// One box of a tensor and the chunk that holds it.
struct Piece {
  Box box;
  pack::ChunkId chunk;
};

// A tensor of a checkpoint: a name and a layout.
struct TensorRecord {
  int64_t id = 0;  // its tensors row (a name with a layout), assigned by the catalog
  std::string name;
  std::string dtype;
  int64_t elem_size = 0;
  Shape shape;
  std::vector<Piece> pieces;  // canonically sorted when read from the catalog
  int64_t layout_id = 0;      // equal ids: equal dtype, shape, boxes and bytes
  int64_t raw_bytes = 0;      // read from the catalog: of its pieces
  int64_t stored_bytes = 0;   // read from the catalog: of its distinct chunks
};

// Pieces in the canonical order: by offsets, lexicographically.
void sort_pieces(std::vector<Piece>& pieces);
bool pieces_sorted(const std::vector<Piece>& pieces);

// layouts.pieces: format byte 1, varint piece count, then per piece
// `rank` varint offsets, `rank` varint sizes and the 16-byte chunk id.
// REQUIRES: pieces canonically sorted, each box of rank `rank`.
std::string encode_pieces(const std::vector<Piece>& pieces, size_t rank);
// Throws CatalogError on a malformed blob (naming `what`). With `within`
// (of rank `rank`), only the pieces that overlap it are returned.
std::vector<Piece> decode_pieces(std::string_view blob, size_t rank, const std::string& what,
                                 const Box* within = nullptr);

// Appends the chunk id of every piece in the blob (in piece order, repeats
// kept) to `out`, without building the boxes. Throws as decode_pieces does.
void append_piece_chunks(std::string_view blob, size_t rank, const std::string& what, std::vector<pack::ChunkId>& out);

// layouts.digest: XXH3-128 of dtype, element size, shape and the encoded pieces.
pack::ChunkId layout_digest(const std::string& dtype, int64_t elem_size, const Shape& shape, std::string_view pieces_blob);

// checkpoints.tensor_ids: varint count, then the ascending ids as varint
// deltas (the first from 0).
std::string encode_ids(std::vector<int64_t> ids);
std::vector<int64_t> decode_ids(std::string_view blob, const std::string& what);

}  // namespace tessera::catalog
