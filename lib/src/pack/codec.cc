#include "pack/codec.h"

#include <emmintrin.h>  // SSE2: part of the x86-64 baseline
#include <lz4.h>

#include <cstring>
#include <stdexcept>

namespace tessera {
namespace {

// A chunk smaller than this is never compressed: the win cannot pay the call.
constexpr size_t kMinCompressBytes = 4096;
// Compression must save at least 1/16 of the bytes to be kept.
bool pays(size_t stored, size_t raw) { return stored + raw / 16 <= raw; }
// kAuto first compresses a sample of this many bytes and gives up if that does not pay.
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
    case Codec::kLz4: return "lz4";
    case Codec::kShuffleLz4: return "shuffle+lz4";
  }
  return "unknown";
}

bool codec_known(uint8_t v) { return v <= static_cast<uint8_t>(Codec::kShuffleLz4); }

void byte_shuffle(const std::byte* in, size_t n, size_t width, std::byte* out) {
  const size_t count = n / width;
  if (width == 2) {
    split2(in, count, out, out + count);
  } else if (width == 4) {  // bytes 0,2 and 1,3 first, then each pair apart
    std::byte* even = scratch(kPlanes, 4 * count);
    std::byte* odd = even + 2 * count;
    split2(in, 2 * count, even, odd);
    split2(even, count, out, out + 2 * count);
    split2(odd, count, out + count, out + 3 * count);
  } else {
    for (size_t b = 0; b < width; ++b) {
      std::byte* dst = out + b * count;
      const std::byte* src = in + b;
      for (size_t i = 0; i < count; ++i) dst[i] = src[i * width];
    }
  }
  std::memcpy(out + count * width, in + count * width, n - count * width);  // ragged tail
}

void byte_unshuffle(const std::byte* in, size_t n, size_t width, std::byte* out) {
  const size_t count = n / width;
  if (width == 2) {
    join2(in, in + count, count, out);
  } else if (width == 4) {
    std::byte* even = scratch(kPlanes, 4 * count);
    std::byte* odd = even + 2 * count;
    join2(in, in + 2 * count, count, even);
    join2(in + count, in + 3 * count, count, odd);
    join2(even, odd, 2 * count, out);
  } else {
    for (size_t b = 0; b < width; ++b) {
      const std::byte* src = in + b * count;
      std::byte* dst = out + b;
      for (size_t i = 0; i < count; ++i) dst[i * width] = src[i];
    }
  }
  std::memcpy(out + count * width, in + count * width, n - count * width);
}

Encoded encode_chunk(const std::byte* raw, size_t n, size_t elem_size, CompressionPolicy policy) {
  switch (policy) {
    case CompressionPolicy::kNone: return Encoded{};
    case CompressionPolicy::kLz4: return compress(Codec::kLz4, raw, n, elem_size);
    case CompressionPolicy::kShuffleLz4: return compress(Codec::kShuffleLz4, raw, n, elem_size);
    case CompressionPolicy::kAuto: break;
  }
  if (n < kMinCompressBytes) return Encoded{};
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
  }
  throw std::runtime_error("unknown codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace tessera
