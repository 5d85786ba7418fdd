#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "io/file.h"
#include "pack/codec.h"
#include "pack/pack_reader.h"
#include "pack/pack_writer.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::TempDir;

TEST_CASE("codecs round-trip random and smooth data of every width") {
  for (size_t n : {0ul, 1ul, 7ul, 4096ul, 100001ul, 300000ul}) {
    for (size_t width : {1ul, 2ul, 4ul, 8ul}) {
      for (auto data : {test::random_bytes(n, n + width), test::smooth_bytes(n, n * width)}) {
        for (auto policy : {CompressionPolicy::kAuto, CompressionPolicy::kNone, CompressionPolicy::kLz4,
                            CompressionPolicy::kShuffleLz4}) {
          Encoded e = encode_chunk(data.data(), n, width, policy);
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
  CHECK(encode_chunk(random.data(), random.size(), 2, CompressionPolicy::kAuto).codec == Codec::kRaw);
  auto smooth = test::smooth_bytes(1 << 20, 2);
  Encoded e = encode_chunk(smooth.data(), smooth.size(), 2, CompressionPolicy::kAuto);
  CHECK(e.codec == Codec::kShuffleLz4);
  CHECK(e.bytes.size() < smooth.size());
}

TEST_CASE("malformed lz4 input is an error, not a crash") {
  auto junk = test::random_bytes(1000, 3);
  std::vector<std::byte> out(5000);
  CHECK_THROWS(decode_chunk(Codec::kLz4, junk.data(), junk.size(), 1, out.data(), out.size()));
}

static pack::PackInfo write_pack(const TempDir& dir, const std::vector<std::vector<std::byte>>& chunks) {
  io::make_dirs(dir / "tmp");
  io::make_dirs(dir / "packs");
  pack::PackWriter w(dir / "tmp", dir / "packs");
  for (const auto& c : chunks) {
    pack::ChunkEntry e;
    e.id = chunk_id_of(c.data(), c.size());
    e.raw_len = e.stored_len = c.size();
    e.block_sums = pack::block_sums_of(c.data(), c.size());
    e.stored_sum = checksum64(e.block_sums.data(), e.block_sums.size() * 8);
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
  pack::PackReader r(dir / ("packs/" + info.name));
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
      pack::PackReader(p).read_footer();
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
  io::set_write_fault_hook([](const std::string&, size_t) { return ENOSPC; });
  std::string message;
  try {
    write_pack(dir, {test::random_bytes(100, 1)});
  } catch (const io::IoError& e) {
    message = e.what();
  }
  io::set_write_fault_hook(nullptr);
  CHECK(message.find("No space left on device") != std::string::npos);
  CHECK(message.find(".partial") != std::string::npos);
  CHECK(std::filesystem::is_empty(dir / "tmp"));
  CHECK(std::filesystem::is_empty(dir / "packs"));
}
