#include "pack/codec.h"

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

std::vector<std::byte> lz4_compress(const std::byte* in, size_t n) {
  if (n > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return {};
  std::vector<std::byte> out(static_cast<size_t>(LZ4_compressBound(static_cast<int>(n))));
  int m = LZ4_compress_default(reinterpret_cast<const char*>(in), reinterpret_cast<char*>(out.data()),
                               static_cast<int>(n), static_cast<int>(out.size()));
  if (m <= 0) return {};
  out.resize(static_cast<size_t>(m));
  return out;
}

Encoded compress(Codec codec, const std::byte* raw, size_t n, size_t width) {
  Encoded e;
  if (codec == Codec::kShuffleLz4 && width > 1) {
    std::vector<std::byte> shuffled(n);
    byte_shuffle(raw, n, width, shuffled.data());
    e.bytes = lz4_compress(shuffled.data(), n);
  } else {
    codec = Codec::kLz4;
    e.bytes = lz4_compress(raw, n);
  }
  e.codec = codec;
  if (e.bytes.empty() || !pays(e.bytes.size(), n)) return Encoded{};
  return e;
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
  for (size_t b = 0; b < width; ++b) {
    std::byte* dst = out + b * count;
    const std::byte* src = in + b;
    for (size_t i = 0; i < count; ++i) dst[i] = src[i * width];
  }
  std::memcpy(out + count * width, in + count * width, n - count * width);  // ragged tail
}

void byte_unshuffle(const std::byte* in, size_t n, size_t width, std::byte* out) {
  const size_t count = n / width;
  for (size_t b = 0; b < width; ++b) {
    const std::byte* src = in + b * count;
    std::byte* dst = out + b;
    for (size_t i = 0; i < count; ++i) dst[i * width] = src[i];
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
      std::vector<std::byte> tmp(raw_len);
      lz4(tmp.data());
      byte_unshuffle(tmp.data(), raw_len, elem_size, out);
      return;
    }
  }
  throw std::runtime_error("unknown codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace tessera
