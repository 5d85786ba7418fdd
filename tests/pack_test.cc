#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/fault_injection_env.h"
#include "io/io_error.h"
#include "pack/codec.h"
#include "pack/pack_reader.h"
#include "pack/pack_writer.h"
#include "tessera/compression.h"
#include "tessera/error.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::TempDir;
using io::FaultInjectionEnv;
using pack::Codec;
using pack::codec_known;
using pack::codec_name;
using pack::decode_chunk;
using pack::Encoded;
using pack::encode_chunk;

TEST_CASE("codecs round-trip random and smooth data of every width") {
  for (size_t n : {0ul, 1ul, 7ul, 4096ul, 100001ul, 300000ul}) {
    for (size_t width : {1ul, 2ul, 4ul, 8ul}) {
      for (auto data : {test::random_bytes(n, n + width), test::smooth_bytes(n, n * width)}) {
        for (Compression compression : kCompressions) {
          Encoded e = encode_chunk(data.data(), n, width, compression);
          std::vector<std::byte> out(n);
          const std::byte* stored = e.codec == Codec::kRaw ? data.data() : e.bytes.data();
          size_t stored_len = e.codec == Codec::kRaw ? n : e.bytes.size();
          decode_chunk(e.codec, stored, stored_len, width, out.data(), n);
          REQUIRE(out == data);
          if (e.codec != Codec::kRaw) CHECK(e.bytes.size() < n);
        }
      }
    }
  }
}

TEST_CASE("auto keeps random bytes raw and compresses bf16-like weights") {
  auto random = test::random_bytes(1 << 20, 1);
  CHECK(encode_chunk(random.data(), random.size(), 2, Compression::kAuto).codec == Codec::kRaw);
  auto smooth = test::smooth_bytes(1 << 20, 2);
  Encoded e = encode_chunk(smooth.data(), smooth.size(), 2, Compression::kAuto);
  CHECK(e.codec == Codec::kShuffleHuffman);
  CHECK(e.bytes.size() < smooth.size());
}

TEST_CASE("every compression has one name that parses back to it, and codecs use the same words") {
  const std::vector<std::string> expected = {"auto", "none", "lz4", "shuffle-lz4", "shuffle-huffman"};
  REQUIRE(std::size(kCompressions) == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(to_string(kCompressions[i]) == expected[i]);
    CHECK(parse_compression(expected[i]) == kCompressions[i]);
  }
  CHECK(compression_names() == "auto, none, lz4, shuffle-lz4, shuffle-huffman");
  CHECK(std::string(codec_name(Codec::kRaw)) == "raw");  // what the pack format calls "none"
  CHECK(codec_name(Codec::kLz4) == to_string(Compression::kLz4));
  CHECK(codec_name(Codec::kShuffleLz4) == to_string(Compression::kShuffleLz4));
  CHECK(codec_name(Codec::kShuffleHuffman) == to_string(Compression::kShuffleHuffman));
}

TEST_CASE("an unknown compression name is refused, naming it and listing the valid ones") {
  // The old spellings (codec names with '+', enumerator names), case variants, the codec "raw", empty.
  for (std::string bad : {"shuffle+lz4", "shuffle+huffman", "kAuto", "LZ4", "Auto", "raw", "zstd", "", "none "}) {
    INFO("word: '" << bad << "'");
    try {
      parse_compression(bad);
      FAIL("accepted");
    } catch (const InvalidArgument& e) {
      CHECK(std::string(e.what()) ==
            "unknown compression '" + bad + "' (valid: auto, none, lz4, shuffle-lz4, shuffle-huffman)");
    }
  }
}

TEST_CASE("malformed lz4 input is an error, not a crash") {
  auto junk = test::random_bytes(1000, 3);
  std::vector<std::byte> out(5000);
  CHECK_THROWS(decode_chunk(Codec::kLz4, junk.data(), junk.size(), 1, out.data(), out.size()));
}

// Encodes as `compression` asks, decodes, and requires the bytes back; returns the encoding.
static Encoded round_trip(const std::vector<std::byte>& data, size_t width, Compression compression) {
  Encoded e = encode_chunk(data.data(), data.size(), width, compression);
  std::vector<std::byte> out(data.size());
  const bool raw = e.codec == Codec::kRaw;
  decode_chunk(e.codec, raw ? data.data() : e.bytes.data(), raw ? data.size() : e.bytes.size(), width, out.data(),
               out.size());
  REQUIRE(out == data);
  return e;
}

// Values for the Huffman tests: bf16/fp32-like weights.
static std::vector<std::byte> floats_bytes(size_t n, size_t width, uint64_t seed, float sigma = 0.02f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; i += width) {
    float f = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if (width == 2) bits >>= 16;
    for (size_t b = 0; b < width && i + b < n; ++b) out[i + b] = static_cast<std::byte>((bits >> (8 * (b % 4))) & 0xff);
  }
  return out;
}

TEST_CASE("shuffle-huffman round-trips random, smooth, constant, single-symbol, empty and odd-length data") {
  const auto force = Compression::kShuffleHuffman;
  for (size_t width : {1ul, 2ul, 3ul, 4ul, 8ul}) {
    for (size_t n : {0ul, 1ul, 2ul, 3ul, 5ul, 17ul, 63ul, 64ul, 65ul, 255ul, 257ul, 1000ul, 4097ul, 65537ul,
                     300001ul, 1ul << 20}) {
      CAPTURE(width);
      CAPTURE(n);
      round_trip(test::random_bytes(n, n + width), width, force);
      round_trip(test::smooth_bytes(n, n + 7), width, force);
      round_trip(floats_bytes(n, width, n + 3), width, force);
      round_trip(std::vector<std::byte>(n, std::byte{0}), width, force);
      round_trip(std::vector<std::byte>(n, std::byte{0x3c}), width, force);
      // Two symbols, one of them rare: long codes, length limiting.
      std::vector<std::byte> skewed(n, std::byte{7});
      for (size_t i = 0; i < n; i += 997) skewed[i] = std::byte{200};
      round_trip(skewed, width, force);
      for (auto compression : {Compression::kAuto, force}) {
        Encoded e = round_trip(floats_bytes(n, width, n + 9, 1e-4f), width, compression);
        if (e.codec != Codec::kRaw) CHECK(e.bytes.size() < n);
      }
    }
  }
  // Geometric symbol frequencies: the unlimited code would be far longer than 11 bits.
  std::vector<std::byte> geo;
  for (int s = 0; s < 40; ++s) geo.insert(geo.end(), size_t{1} << (s < 20 ? 20 - s : 0), std::byte(s));
  std::shuffle(geo.begin(), geo.end(), std::mt19937_64(5));
  Encoded e = round_trip(geo, 1, force);
  CHECK(e.codec == Codec::kShuffleHuffman);
  CHECK(e.bytes.size() < geo.size() / 3);
  // A constant chunk collapses to its headers.
  std::vector<std::byte> zeros(1 << 20, std::byte{0});
  e = round_trip(zeros, 2, force);
  REQUIRE(e.codec == Codec::kShuffleHuffman);
  CHECK(e.bytes.size() < 16);
  // auto keeps very redundant data under shuffle-lz4 when that is smaller.
  CHECK(round_trip(zeros, 2, Compression::kAuto).codec != Codec::kRaw);
}

TEST_CASE("auto picks shuffle-huffman for 2- and 4-byte floats, shuffle-lz4 for other widths") {
  auto bf16 = floats_bytes(1 << 20, 2, 1);
  CHECK(round_trip(bf16, 2, Compression::kAuto).codec == Codec::kShuffleHuffman);
  auto fp32 = floats_bytes(1 << 20, 4, 2);
  CHECK(round_trip(fp32, 4, Compression::kAuto).codec == Codec::kShuffleHuffman);
  auto random = test::random_bytes(1 << 20, 3);
  CHECK(round_trip(random, 4, Compression::kAuto).codec == Codec::kRaw);
  CHECK(round_trip(random, 2, Compression::kShuffleHuffman).codec == Codec::kRaw);
  std::vector<std::byte> runs(1 << 20);
  for (size_t i = 0; i < runs.size(); ++i) runs[i] = std::byte((i / 4096) & 0xff);
  CHECK(round_trip(runs, 8, Compression::kAuto).codec == Codec::kShuffleLz4);
}

TEST_CASE("golden: shuffle-huffman stores smooth bf16 smaller than shuffle-lz4") {
  auto smooth = test::smooth_bytes(4 << 20, 11);
  Encoded h = round_trip(smooth, 2, Compression::kShuffleHuffman);
  Encoded l = round_trip(smooth, 2, Compression::kShuffleLz4);
  REQUIRE(h.codec == Codec::kShuffleHuffman);
  REQUIRE(l.codec == Codec::kShuffleLz4);
  CHECK(h.bytes.size() < l.bytes.size());
  // N(0, 0.02) bf16: high byte ~2.6 bits, low byte raw, so ~1.45x.
  CHECK(static_cast<double>(smooth.size()) / static_cast<double>(h.bytes.size()) > 1.4);
  // The layout: version 1, width 2, plane 0 raw, plane 1 huffman.
  const auto* b = reinterpret_cast<const uint8_t*>(h.bytes.data());
  CHECK(b[0] == 1);
  CHECK(b[1] == 2);
  CHECK(b[2] == 0);
  CHECK(b[3 + smooth.size() / 2] == 2);
  CHECK(codec_known(3));
  CHECK(!codec_known(4));
}

TEST_CASE("malformed shuffle-huffman input is an error, never an out-of-bounds access") {
  std::mt19937_64 rng(42);
  for (size_t width : {1ul, 2ul, 4ul}) {
    for (size_t n : {5000ul, 70000ul, 300000ul}) {
      auto data = floats_bytes(n, width, n + width);
      if (width == 1) {  // the high bytes of bf16 values: ~2.6 bits each
        auto bf16 = floats_bytes(2 * n, 2, n);
        for (size_t i = 0; i < n; ++i) data[i] = bf16[2 * i + 1];
      }
      Encoded e = encode_chunk(data.data(), n, width, Compression::kShuffleHuffman);
      REQUIRE(e.codec == Codec::kShuffleHuffman);
      const std::vector<std::byte> good(e.bytes.data(), e.bytes.data() + e.bytes.size());
      std::vector<std::byte> out(n);
      // Every malformed variant either throws or decodes to n bytes; the
      // sanitizer build checks that nothing outside the buffers is touched.
      auto attempt = [&](const std::vector<std::byte>& stored, size_t raw_len, size_t w) {
        std::vector<std::byte> o(raw_len);
        // A heap copy of exactly the stored length, so reads past it are caught.
        std::unique_ptr<std::byte[]> copy(new std::byte[stored.size() ? stored.size() : 1]);
        std::memcpy(copy.get(), stored.data(), stored.size());
        try {
          decode_chunk(Codec::kShuffleHuffman, copy.get(), stored.size(), w, o.data(), raw_len);
          return true;
        } catch (const std::runtime_error&) {
          return false;
        }
      };
      CHECK(attempt(good, n, width));
      // Truncations: every one must be refused.
      for (size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 97) {
        CAPTURE(cut);
        CHECK_FALSE(attempt(std::vector<std::byte>(good.begin(), good.begin() + cut), n, width));
      }
      // Extra bytes, wrong raw length, wrong width.
      auto longer = good;
      longer.push_back(std::byte{0});
      CHECK_FALSE(attempt(longer, n, width));
      CHECK_FALSE(attempt(good, n + width, width));
      CHECK_FALSE(attempt(good, n, width == 2 ? 4 : 2));
      // Bit flips and random bytes: throw or decode, never crash.
      for (int t = 0; t < 300; ++t) {
        auto bad = good;
        for (int f = 0; f < 1 + t % 4; ++f) bad[rng() % bad.size()] ^= std::byte(1u << (rng() % 8));
        attempt(bad, n, width);
      }
      for (int t = 0; t < 50; ++t) {
        auto junk = test::random_bytes(rng() % (good.size() + 64), rng());
        if (!junk.empty()) {
          junk[0] = std::byte{1};
          if (junk.size() > 1) junk[1] = std::byte(width);
        }
        attempt(junk, n, width);
      }
      // A complete-looking header with corrupt code lengths.
      auto lens = good;
      const size_t plane_at = 2 + (width - 1) * (1 + n / width);  // the top plane; those below are raw
      REQUIRE(static_cast<uint8_t>(lens[plane_at]) == 2);
      lens[plane_at + 1] = std::byte{0xff};  // symbols 0 and 1 get length 15
      CHECK_FALSE(attempt(lens, n, width));
      auto unknown_mode = good;
      unknown_mode[plane_at] = std::byte{9};
      CHECK_FALSE(attempt(unknown_mode, n, width));
      auto version = good;
      version[0] = std::byte{2};
      CHECK_FALSE(attempt(version, n, width));
    }
  }
  std::vector<std::byte> out(100);
  CHECK_THROWS(decode_chunk(Codec::kShuffleHuffman, nullptr, 0, 2, out.data(), out.size()));
}

static pack::PackInfo write_pack(const TempDir& dir, const std::vector<std::vector<std::byte>>& chunks,
                                 Env& env = *posix_env()) {
  env.make_dirs(dir / "tmp");
  env.make_dirs(dir / "packs");
  pack::PackWriter w(env, dir / "tmp", dir / "packs");
  for (const auto& c : chunks) {
    pack::ChunkEntry e;
    e.id = pack::chunk_id_of(c.data(), c.size());
    e.raw_len = e.stored_len = c.size();
    e.block_sums = pack::block_sums_of(c.data(), c.size());
    e.stored_sum = pack::checksum64(e.block_sums.data(), e.block_sums.size() * 8);
    w.add(e, c.data());
  }
  return w.finish();
}

TEST_CASE("a pack describes itself: footer round-trip, content-addressed name, no temp left") {
  TempDir dir("pack");
  std::vector<std::vector<std::byte>> chunks = {test::random_bytes(100, 1), test::random_bytes(200000, 2),
                                                test::random_bytes(0, 3)};
  pack::PackInfo info = write_pack(dir, chunks);
  CHECK(std::filesystem::is_empty(dir / "tmp"));
  pack::PackReader r(*posix_env(), dir / ("packs/" + info.name));
  auto entries = r.read_footer();
  REQUIRE(entries == info.chunks);
  CHECK(entries[1].block_sums.size() == 4);
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::vector<std::byte> got(entries[i].stored_len);
    r.read(entries[i].offset, got.size(), got.data());
    CHECK(got == chunks[i]);
  }
  // The same content gives the same name.
  TempDir dir2("pack");
  CHECK(write_pack(dir2, chunks).name == info.name);
}

TEST_CASE("damaged packs are refused with the pack's path in the message") {
  TempDir dir("pack");
  pack::PackInfo info = write_pack(dir, {test::random_bytes(5000, 1)});
  const std::string path = dir / ("packs/" + info.name);
  auto message_of = [](const std::string& p) {
    try {
      pack::PackReader(*posix_env(), p).read_footer();
    } catch (const pack::PackError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SUBCASE("truncated") {
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
    std::string m = message_of(path);
    CHECK(m.find(info.name) != std::string::npos);
    CHECK(m.find("magic") != std::string::npos);
  }
  SUBCASE("flipped footer byte") {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000 + 3);
    f.put('\x7f');
    f.close();
    CHECK(message_of(path).find("footer checksum") != std::string::npos);
  }
  SUBCASE("foreign file") {
    std::ofstream(dir / "foreign") << "hello, this is not a pack at all; it is long enough though......";
    CHECK(message_of(dir / "foreign").find("not a tessera pack") != std::string::npos);
  }
  SUBCASE("missing") {
    std::filesystem::remove(path);
    CHECK(message_of(path).find(info.name) != std::string::npos);
  }
}

TEST_CASE("a write failure (full disk) names the file and leaves no temp file") {
  TempDir dir("pack");
  FaultInjectionEnv full(posix_env());
  full.set_rule([](const FaultInjectionEnv::Call& c) { return c.op == FaultInjectionEnv::Op::kAppend ? ENOSPC : 0; });
  std::string message;
  try {
    write_pack(dir, {test::random_bytes(100, 1)}, full);
  } catch (const io::IoError& e) {
    message = e.what();
  }
  CHECK(message.find("No space left on device") != std::string::npos);
  CHECK(message.find(".partial") != std::string::npos);
  CHECK(std::filesystem::is_empty(dir / "tmp"));
  CHECK(std::filesystem::is_empty(dir / "packs"));
}
