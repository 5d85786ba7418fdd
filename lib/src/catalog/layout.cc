#include "catalog/layout.h"

#include <algorithm>
#include <cstring>

#include "catalog/sqlite.h"

namespace tessera::catalog {
namespace {

constexpr char kPiecesFormat = 1;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

class Reader {
 public:
  Reader(std::string_view blob, const std::string& what) : blob_(blob), what_(what) {}

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= blob_.size()) fail("ends inside a number");
      const auto byte = static_cast<uint8_t>(blob_[pos_++]);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail("has a number longer than 64 bits");
  }
  int64_t coordinate() {
    const uint64_t v = varint();
    if (v > static_cast<uint64_t>(INT64_MAX)) fail("has a coordinate out of range");
    return static_cast<int64_t>(v);
  }
  void bytes(void* dst, size_t n) {
    if (blob_.size() - pos_ < n) fail("is truncated");
    std::memcpy(dst, blob_.data() + pos_, n);
    pos_ += n;
  }
  uint8_t byte() {
    uint8_t b = 0;
    bytes(&b, 1);
    return b;
  }
  size_t left() const { return blob_.size() - pos_; }
  [[noreturn]] void fail(const std::string& why) const { throw CatalogError("catalog: " + what_ + " " + why); }

 private:
  std::string_view blob_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

namespace {

bool canonical_less(const Piece& a, const Piece& b) {
  return a.box.offsets != b.box.offsets ? a.box.offsets < b.box.offsets : a.box.sizes < b.box.sizes;
}

}  // namespace

void sort_pieces(std::vector<Piece>& pieces) { std::sort(pieces.begin(), pieces.end(), canonical_less); }

bool pieces_sorted(const std::vector<Piece>& pieces) {
  return std::is_sorted(pieces.begin(), pieces.end(), canonical_less);
}

std::string encode_pieces(const std::vector<Piece>& pieces, size_t rank) {
  std::string out(1, kPiecesFormat);
  out.reserve(1 + 4 + pieces.size() * (16 + 4 * rank));
  put_varint(out, pieces.size());
  for (const Piece& p : pieces) {
    for (size_t d = 0; d < rank; ++d) put_varint(out, static_cast<uint64_t>(p.box.offsets[d]));
    for (size_t d = 0; d < rank; ++d) put_varint(out, static_cast<uint64_t>(p.box.sizes[d]));
    out.append(reinterpret_cast<const char*>(p.chunk.bytes.data()), 16);
  }
  return out;
}

namespace {

// Whether the box at offsets/sizes (rank entries each) overlaps `b`, as
// intersect() decides it: a non-empty common part.
bool overlaps(const int64_t* offsets, const int64_t* sizes, const Box& b) {
  if (b.empty()) return false;
  for (size_t d = 0; d < b.rank(); ++d) {
    if (sizes[d] == 0) return false;
    if (std::min(offsets[d] + sizes[d], b.offsets[d] + b.sizes[d]) <= std::max(offsets[d], b.offsets[d])) return false;
  }
  return true;
}

}  // namespace

std::vector<Piece> decode_pieces(std::string_view blob, size_t rank, const std::string& what, const Box* within) {
  Reader in(blob, what);
  if (in.byte() != kPiecesFormat) in.fail("has an unknown pieces format");
  const uint64_t n = in.varint();
  if (n > in.left() / 16) in.fail("claims more pieces than it holds");
  if (within && (within->rank() != rank || within->offsets.size() != rank))
    within = nullptr;  // not a box of this tensor: the caller refuses it
  std::vector<Piece> out;
  out.reserve(within ? 0 : n);
  std::vector<int64_t> box(2 * rank);  // offsets, then sizes
  for (uint64_t i = 0; i < n; ++i) {
    for (int64_t& x : box) x = in.coordinate();
    for (size_t d = 0; d < rank; ++d)
      if (box[rank + d] > INT64_MAX - box[d]) in.fail("has a piece that ends past the largest coordinate");
    pack::ChunkId chunk;
    in.bytes(chunk.bytes.data(), 16);
    if (within && !overlaps(box.data(), box.data() + rank, *within)) continue;
    out.push_back(Piece{Box{Shape(box.begin(), box.begin() + static_cast<std::ptrdiff_t>(rank)),
                            Shape(box.begin() + static_cast<std::ptrdiff_t>(rank), box.end())},
                        chunk});
  }
  if (in.left() != 0) in.fail("has trailing bytes");
  return out;
}

void append_piece_chunks(std::string_view blob, size_t rank, const std::string& what, std::vector<pack::ChunkId>& out) {
  Reader in(blob, what);
  if (in.byte() != kPiecesFormat) in.fail("has an unknown pieces format");
  const uint64_t n = in.varint();
  if (n > in.left() / 16) in.fail("claims more pieces than it holds");
  for (uint64_t i = 0; i < n; ++i) {
    for (size_t d = 0; d < 2 * rank; ++d) in.coordinate();
    in.bytes(out.emplace_back().bytes.data(), 16);
  }
  if (in.left() != 0) in.fail("has trailing bytes");
}

pack::ChunkId layout_digest(const std::string& dtype, int64_t elem_size, const Shape& shape, std::string_view pieces_blob) {
  std::string head = dtype;
  head.push_back('\0');
  put_varint(head, static_cast<uint64_t>(elem_size));
  put_varint(head, shape.size());
  for (int64_t s : shape) put_varint(head, static_cast<uint64_t>(s));
  head.append(pieces_blob);
  return pack::chunk_id_of(head.data(), head.size());  // the XXH3-128 of the bytes
}

std::string encode_ids(std::vector<int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::string out;
  put_varint(out, ids.size());
  int64_t prev = 0;
  for (int64_t id : ids) {
    put_varint(out, static_cast<uint64_t>(id - prev));
    prev = id;
  }
  return out;
}

std::vector<int64_t> decode_ids(std::string_view blob, const std::string& what) {
  Reader in(blob, what);
  const uint64_t n = in.varint();
  if (n > in.left()) in.fail("claims more ids than it holds");
  std::vector<int64_t> out;
  out.reserve(n);
  int64_t prev = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t step = in.coordinate();
    if (step > INT64_MAX - prev) in.fail("has an id out of range");
    prev += step;
    out.push_back(prev);
  }
  if (in.left() != 0) in.fail("has trailing bytes");
  return out;
}

}  // namespace tessera::catalog
