#include "pack/codec.h"

#include <emmintrin.h>  // SSE2: part of the x86-64 baseline
#include <lz4.h>

#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>

#include "pack/huffman.h"
#include "tessera/error.h"

namespace tessera {
namespace {

// The names of tessera/compression.h, indexed by Compression (declaration order).
constexpr const char* kCompressionNames[] = {"auto", "none", "lz4", "shuffle-lz4", "shuffle-huffman"};
static_assert(std::size(kCompressionNames) == std::size(kCompressions));

}  // namespace

std::string to_string(Compression compression) {
  const auto i = static_cast<size_t>(compression);
  return i < std::size(kCompressionNames) ? kCompressionNames[i] : "unknown";
}

std::string compression_names() {
  std::string names;
  for (const char* name : kCompressionNames) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

Compression parse_compression(std::string_view word) {
  for (Compression c : kCompressions)
    if (word == kCompressionNames[static_cast<size_t>(c)]) return c;
  throw InvalidArgument("unknown compression '" + std::string(word) + "' (valid: " + compression_names() + ")");
}

}  // namespace tessera

namespace tessera::pack {
namespace {

// A chunk smaller than this is never compressed: the win cannot pay the call.
constexpr size_t kMinCompressBytes = 4096;
// Compression must save at least 1/16 of the bytes to be kept.
bool pays(size_t stored, size_t raw) { return stored + raw / 16 <= raw; }
// Compression::kAuto first compresses a sample of this many bytes and gives up if that does not pay.
constexpr size_t kSampleBytes = 64 * 1024;

// Per-thread scratch buffers, reused across chunks: kStaging holds a whole
// shuffled chunk, kPlanes the intermediate planes of a 4-byte shuffle.
enum Scratch { kStaging = 0, kPlanes = 1 };
std::byte* scratch(Scratch slot, size_t n) {
  thread_local ByteBuffer bufs[2];
  if (bufs[slot].size() < n) bufs[slot] = ByteBuffer(n);
  return bufs[slot].data();
}

ByteBuffer lz4_compress(const std::byte* in, size_t n) {
  if (n > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return {};
  ByteBuffer out(static_cast<size_t>(LZ4_compressBound(static_cast<int>(n))));
  int m = LZ4_compress_default(reinterpret_cast<const char*>(in), reinterpret_cast<char*>(out.data()),
                               static_cast<int>(n), static_cast<int>(out.size()));
  if (m <= 0) return {};
  out.shrink(static_cast<size_t>(m));
  return out;
}

Encoded compress(Codec codec, const std::byte* raw, size_t n, size_t width) {
  Encoded e;
  if (codec == Codec::kShuffleLz4 && width > 1) {
    std::byte* shuffled = scratch(kStaging, n);
    byte_shuffle(raw, n, width, shuffled);
    e.bytes = lz4_compress(shuffled, n);
  } else {
    codec = Codec::kLz4;
    e.bytes = lz4_compress(raw, n);
  }
  e.codec = codec;
  if (e.bytes.empty() || !pays(e.bytes.size(), n)) return Encoded{};
  return e;
}

// Splits `count` 2-byte elements into their low-byte and high-byte planes.
void split2(const std::byte* in, size_t count, std::byte* lo, std::byte* hi) {
  size_t i = 0;
  const __m128i low_mask = _mm_set1_epi16(0x00ff);
  for (; i + 16 <= count; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i),
                     _mm_packus_epi16(_mm_and_si128(a, low_mask), _mm_and_si128(b, low_mask)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i),
                     _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
  }
  for (; i < count; ++i) {
    lo[i] = in[2 * i];
    hi[i] = in[2 * i + 1];
  }
}

// The inverse of split2 (declared here, defined below).
void join2(const std::byte* lo, const std::byte* hi, size_t count, std::byte* out);

// --- shuffle-huffman (codec 3) --------------------------------------------
//
// Stored bytes: u8 version (1), u8 width, then for each of the `width` byte
// planes of the shuffle a u8 mode and its data, then the n mod width tail
// bytes as they are. Modes: 0 raw (count bytes), 1 constant (one byte: every
// byte of the plane), 2 huffman (a coded plane, pack/huffman.h).
constexpr uint8_t kHuffmanVersion = 1;
enum PlaneMode : uint8_t { kPlaneRaw = 0, kPlaneConst = 1, kPlaneHuffman = 2 };
// A plane whose sampled order-0 entropy is above this many bits per byte is
// stored raw without a full histogram (mantissa planes are ~7.9-8.0). Coding
// a plane of higher entropy saves little (at most 1/4 of it at 6.5 bits)
// and its decode costs more time than those bytes take to read from disk.
constexpr double kRawPlaneEntropy = 6.5;

// The `width` planes of `count` bytes each that lie one after another at
// `base` (a shuffled chunk's layout).
template <class Byte>
std::vector<Byte*> planes_at(Byte* base, size_t count, size_t width) {
  std::vector<Byte*> planes(width);
  for (size_t p = 0; p < width; ++p) planes[p] = base + p * count;
  return planes;
}

// Byte shuffle of whole elements into per-plane destinations.
void shuffle_to(const std::byte* in, size_t count, size_t width, std::byte* const* dst) {
  if (width == 1) {
    std::memcpy(dst[0], in, count);
  } else if (width == 2) {
    split2(in, count, dst[0], dst[1]);
  } else if (width == 4) {  // bytes 0,2 and 1,3 first, then each pair apart
    std::byte* even = scratch(kPlanes, 4 * count);
    std::byte* odd = even + 2 * count;
    split2(in, 2 * count, even, odd);
    split2(even, count, dst[0], dst[2]);
    split2(odd, count, dst[1], dst[3]);
  } else {
    for (size_t b = 0; b < width; ++b) {
      std::byte* plane = dst[b];
      const std::byte* src = in + b;
      for (size_t i = 0; i < count; ++i) plane[i] = src[i * width];
    }
  }
}

// With `probe`, only decides: returns codec kShuffleHuffman (and no bytes)
// where the encoding would pay, else raw.
Encoded compress_huffman(const std::byte* raw, size_t n, size_t width, bool probe = false) {
  if (width == 0) width = 1;
  const size_t count = n / width;
  if (width > 255 || count == 0 || count > huffman::kMaxCount) return Encoded{};
  // Planes whose sample looks incompressible are stored raw. When they come
  // first (the mantissa planes of little-endian floats), the shuffle writes
  // them straight to their place in the output.
  std::vector<uint8_t> candidate(width);
  size_t prefix = width, candidates = 0;
  for (size_t p = 0; p < width; ++p) {
    candidate[p] = huffman::sampled_entropy(reinterpret_cast<const uint8_t*>(raw) + p, count, width) <= kRawPlaneEntropy;
    candidates += candidate[p];
    if (candidate[p] && prefix == width) prefix = p;
  }
  if (candidates == 0) return Encoded{};
  if (probe) prefix = 0;
  Encoded e;
  if (!probe) e.bytes = ByteBuffer(2 + width + n);  // the most a paying encoding can take
  auto* out = reinterpret_cast<uint8_t*>(e.bytes.data());
  std::byte* staging = scratch(kStaging, n);
  std::vector<std::byte*> dst(width);
  for (size_t p = 0; p < width; ++p)
    dst[p] = p < prefix ? reinterpret_cast<std::byte*>(out + 2 + p * (1 + count) + 1) : staging + p * count;
  shuffle_to(raw, count, width, dst.data());

  std::vector<huffman::Plan> plans(width);
  std::vector<uint8_t> modes(width, kPlaneRaw);
  size_t total = 2 + width + (n - count * width);
  for (size_t p = 0; p < width; ++p) {
    const auto* plane = reinterpret_cast<const uint8_t*>(dst[p]);
    if (candidate[p]) {
      plans[p] = huffman::plan(plane, count);
      if (plans[p].symbols == 1) modes[p] = kPlaneConst;
      else if (plans[p].total > 0 && plans[p].total + count / 8 <= count) modes[p] = kPlaneHuffman;
    }
    total += modes[p] == kPlaneRaw ? count : modes[p] == kPlaneConst ? 1 : plans[p].total;
  }
  if (!pays(total, n)) return Encoded{};
  e.codec = Codec::kShuffleHuffman;
  if (probe) return e;
  out[0] = kHuffmanVersion;
  out[1] = static_cast<uint8_t>(width);
  uint8_t* o = out + 2;
  for (size_t p = 0; p < prefix; ++p, o += 1 + count) *o = kPlaneRaw;  // already in place
  for (size_t p = prefix; p < width; ++p) {
    const auto* plane = reinterpret_cast<const uint8_t*>(dst[p]);
    *o++ = modes[p];
    switch (modes[p]) {
      case kPlaneRaw: std::memcpy(o, plane, count); o += count; break;
      case kPlaneConst: *o++ = plane[0]; break;
      case kPlaneHuffman: huffman::encode(plane, count, plans[p], o); o += plans[p].total; break;
    }
  }
  std::memcpy(o, raw + count * width, n - count * width);
  o += n - count * width;
  if (static_cast<size_t>(o - out) != total) throw std::logic_error("shuffle-huffman: size differs from its plan");
  e.bytes.shrink(total);
  return e;
}

// Interleaves `width` planes of `count` bytes each into `out` (the inverse
// of byte_shuffle without the tail).
void join_planes(const std::byte* const* planes, size_t count, size_t width, std::byte* out) {
  if (width == 1) {
    std::memcpy(out, planes[0], count);
  } else if (width == 2) {
    join2(planes[0], planes[1], count, out);
  } else if (width == 4) {
    std::byte* even = scratch(kPlanes, 4 * count);
    std::byte* odd = even + 2 * count;
    join2(planes[0], planes[2], count, even);
    join2(planes[1], planes[3], count, odd);
    join2(even, odd, 2 * count, out);
  } else {
    for (size_t b = 0; b < width; ++b) {
      const std::byte* src = planes[b];
      std::byte* dst = out + b;
      for (size_t i = 0; i < count; ++i) dst[i * width] = src[i];
    }
  }
}

void decompress_huffman(const std::byte* stored, size_t stored_len, size_t elem_size, std::byte* out,
                        size_t raw_len) {
  auto bad = [](const std::string& what) { return std::runtime_error("shuffle-huffman data is malformed: " + what); };
  const auto* in = reinterpret_cast<const uint8_t*>(stored);
  if (stored_len < 2) throw bad("header cut short");
  if (in[0] != kHuffmanVersion) throw bad("unknown version " + std::to_string(in[0]));
  const size_t width = in[1];
  if (width != (elem_size == 0 ? 1 : elem_size)) throw bad("width " + std::to_string(width) + " is not the element size " + std::to_string(elem_size));
  const size_t count = raw_len / width;
  std::byte* decoded = scratch(kStaging, count * width);
  std::vector<const std::byte*> planes(width);
  size_t at = 2;
  for (size_t p = 0; p < width; ++p) {
    if (at >= stored_len) throw bad("plane " + std::to_string(p) + " header cut short");
    const uint8_t mode = in[at++];
    const size_t left = stored_len - at;
    auto* dst = reinterpret_cast<uint8_t*>(decoded + p * count);
    switch (mode) {
      case kPlaneRaw:
        if (left < count) throw bad("raw plane " + std::to_string(p) + " cut short");
        planes[p] = stored + at;
        at += count;
        break;
      case kPlaneConst:
        if (left < 1) throw bad("constant plane " + std::to_string(p) + " cut short");
        std::memset(dst, in[at++], count);
        planes[p] = decoded + p * count;
        break;
      case kPlaneHuffman:
        at += huffman::decode(in + at, left, dst, count);
        planes[p] = decoded + p * count;
        break;
      default: throw bad("plane " + std::to_string(p) + " has unknown mode " + std::to_string(mode));
    }
  }
  const size_t tail = raw_len - count * width;
  if (stored_len - at != tail)
    throw bad(std::to_string(stored_len - at) + " bytes after the planes, expected " + std::to_string(tail));
  join_planes(planes.data(), count, width, out);
  std::memcpy(out + count * width, stored + at, tail);
}

// The inverse of split2.
void join2(const std::byte* lo, const std::byte* hi, size_t count, std::byte* out) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m128i l = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + i));
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm_unpacklo_epi8(l, h));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 16), _mm_unpackhi_epi8(l, h));
  }
  for (; i < count; ++i) {
    out[2 * i] = lo[i];
    out[2 * i + 1] = hi[i];
  }
}

}  // namespace

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::kRaw: return "raw";
    case Codec::kLz4: return kCompressionNames[static_cast<size_t>(Compression::kLz4)];
    case Codec::kShuffleLz4: return kCompressionNames[static_cast<size_t>(Compression::kShuffleLz4)];
    case Codec::kShuffleHuffman: return kCompressionNames[static_cast<size_t>(Compression::kShuffleHuffman)];
  }
  return "unknown";
}

bool codec_known(uint8_t v) { return v <= static_cast<uint8_t>(Codec::kShuffleHuffman); }

void byte_shuffle(const std::byte* in, size_t n, size_t width, std::byte* out) {
  const size_t count = n / width;
  shuffle_to(in, count, width, planes_at(out, count, width).data());
  std::memcpy(out + count * width, in + count * width, n - count * width);  // ragged tail
}

void byte_unshuffle(const std::byte* in, size_t n, size_t width, std::byte* out) {
  const size_t count = n / width;
  join_planes(planes_at(in, count, width).data(), count, width, out);
  std::memcpy(out + count * width, in + count * width, n - count * width);
}

Encoded encode_chunk(const std::byte* raw, size_t n, size_t elem_size, Compression compression) {
  switch (compression) {
    case Compression::kNone: return Encoded{};
    case Compression::kLz4: return compress(Codec::kLz4, raw, n, elem_size);
    case Compression::kShuffleLz4: return compress(Codec::kShuffleLz4, raw, n, elem_size);
    case Compression::kShuffleHuffman: return compress_huffman(raw, n, elem_size);
    case Compression::kAuto: break;
  }
  if (n < kMinCompressBytes) return Encoded{};
  if (elem_size == 2 || elem_size == 4) {
    if (n > 2 * kSampleBytes) {
      const size_t sample = kSampleBytes / elem_size * elem_size;
      if (compress_huffman(raw + (n / 2 / elem_size) * elem_size, sample, elem_size, true).codec == Codec::kRaw)
        return Encoded{};
    }
    Encoded e = compress_huffman(raw, n, elem_size);
    // Order-0 coding saves at most 7/8 of a plane; data this redundant (runs,
    // repeats) may be much smaller under LZ4, which is also fast on it.
    if (e.codec != Codec::kRaw && e.bytes.size() < n / 4) {
      Encoded l = compress(Codec::kShuffleLz4, raw, n, elem_size);
      if (l.codec != Codec::kRaw && l.bytes.size() < e.bytes.size()) return l;
    }
    return e;
  }
  const Codec codec = elem_size > 1 ? Codec::kShuffleLz4 : Codec::kLz4;
  if (n > 2 * kSampleBytes) {
    size_t sample = kSampleBytes / elem_size * elem_size;
    if (compress(codec, raw + (n / 2 / elem_size) * elem_size, sample, elem_size).codec == Codec::kRaw)
      return Encoded{};
  }
  return compress(codec, raw, n, elem_size);
}

void decode_chunk(Codec codec, const std::byte* stored, size_t stored_len, size_t elem_size,
                  std::byte* out, size_t raw_len) {
  auto lz4 = [&](std::byte* dst) {
    int m = LZ4_decompress_safe(reinterpret_cast<const char*>(stored), reinterpret_cast<char*>(dst),
                                static_cast<int>(stored_len), static_cast<int>(raw_len));
    if (m < 0 || static_cast<size_t>(m) != raw_len)
      throw std::runtime_error("lz4 data is malformed (decoded " + std::to_string(m) + " of " +
                               std::to_string(raw_len) + " bytes)");
  };
  switch (codec) {
    case Codec::kRaw:
      if (stored_len != raw_len) throw std::runtime_error("raw chunk length mismatch");
      std::memcpy(out, stored, raw_len);
      return;
    case Codec::kLz4: lz4(out); return;
    case Codec::kShuffleLz4: {
      std::byte* shuffled = scratch(kStaging, raw_len);
      lz4(shuffled);
      byte_unshuffle(shuffled, raw_len, elem_size, out);
      return;
    }
    case Codec::kShuffleHuffman: decompress_huffman(stored, stored_len, elem_size, out, raw_len); return;
  }
  throw std::runtime_error("unknown codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace tessera::pack
