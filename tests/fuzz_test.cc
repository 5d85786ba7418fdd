// Fuzzing the decoders that read bytes from disk: chunk codecs, pack footers,
// the catalog's layout and id-list blobs, and rank manifests. Valid inputs
// are mutated at random (bit flips, overwritten, inserted and deleted bytes,
// truncation, spliced copies) and decoded; a decoder may only succeed or
// throw. This suite is built from the decoders' own sources with
// AddressSanitizer and UBSan (tests/meson.build), so a read past a buffer or
// an overflow fails it. Bounded by TESSERA_FUZZ_SECONDS (default 20) and a
// fixed seed (TESSERA_FUZZ_SEED), so CI runs are repeatable.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "catalog/layout.h"
#include "engine/save/manifest_codec.h"
#include "pack/codec.h"
#include "pack/pack_format.h"
#include "test_util.h"

using namespace tessera;

namespace {

using Input = std::string;  // bytes to decode

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

// One random change of `b`.
void mutate(Input& b, std::mt19937_64& rng, const std::vector<Input>& corpus) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  switch (rng() % 7) {
    case 0:  // flip a bit
      if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 1:  // overwrite a byte with an edge value
      if (!b.empty()) b[pick(b.size())] = static_cast<char>(std::vector<int>{0, 1, 0x7f, 0x80, 0xff}[rng() % 5]);
      break;
    case 2:  // insert random bytes
      b.insert(pick(b.size() + 1), Input(1 + pick(16), static_cast<char>(rng())));
      break;
    case 3:  // delete a run
      if (!b.empty()) {
        const size_t at = pick(b.size());
        b.erase(at, 1 + pick(std::min<size_t>(16, b.size() - at)));
      }
      break;
    case 4:  // truncate
      b.resize(pick(b.size() + 1));
      break;
    case 5: {  // splice in a piece of another valid input
      const Input& other = corpus[pick(corpus.size())];
      if (!other.empty()) {
        const size_t from = pick(other.size());
        b.insert(pick(b.size() + 1), other.substr(from, 1 + pick(other.size() - from)));
      }
      break;
    }
    default:  // overwrite 8 bytes with a random word (lengths, counts, offsets)
      if (b.size() >= 8) {
        const uint64_t w = rng() >> (rng() % 64);
        std::memcpy(b.data() + pick(b.size() - 7), &w, 8);
      }
  }
}

// Runs `decode` on mutations of `corpus` for `seconds`; returns how many
// inputs it decoded and how many it refused. A crash or a sanitizer report
// ends the process: the test fails.
std::pair<size_t, size_t> fuzz(const std::vector<Input>& corpus, double seconds, uint64_t seed,
                               const std::function<void(const Input&)>& decode) {
  std::mt19937_64 rng(seed);
  size_t ok = 0, refused = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int batch = 0; batch < 64; ++batch) {
      Input b = corpus[rng() % corpus.size()];
      for (uint64_t k = 1 + rng() % 4; k > 0; --k) mutate(b, rng, corpus);
      try {
        decode(b);
        ++ok;
      } catch (const std::exception&) {
        ++refused;
      }
    }
  }
  return {ok, refused};
}

const double kSeconds = env_number("TESSERA_FUZZ_SECONDS", 20) / 5;  // per target
const uint64_t kSeed = static_cast<uint64_t>(env_number("TESSERA_FUZZ_SEED", 1));

std::vector<std::byte> sample_data(size_t n, int kind) {
  std::vector<std::byte> out = kind == 0 ? tessera::test::random_bytes(n, 7) : tessera::test::smooth_bytes(n, 7);
  if (kind == 2) std::fill(out.begin() + static_cast<std::ptrdiff_t>(n / 2), out.end(), std::byte{0});
  return out;
}

}  // namespace

TEST_CASE("fuzz: chunk decoders only decode or throw") {
  struct Sample {
    pack::Codec codec;
    size_t elem;
    size_t raw_len;
  };
  std::vector<Input> corpus;
  std::vector<Sample> samples;
  for (Compression compression : {Compression::kLz4, Compression::kShuffleLz4, Compression::kShuffleHuffman})
    for (size_t elem : {1, 2, 4})
      for (int kind : {1, 2})
        for (size_t n : {size_t{64}, size_t{4096}, size_t{65536}}) {
          const auto raw = sample_data(n, kind);
          pack::Encoded e = pack::encode_chunk(raw.data(), n, elem, compression);
          if (e.codec == pack::Codec::kRaw) continue;
          corpus.emplace_back(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size());
          samples.push_back(Sample{e.codec, elem, n});
        }
  REQUIRE(corpus.size() > 10);
  std::mt19937_64 pick(kSeed);
  std::vector<std::byte> out(1 << 17);
  auto [ok, refused] = fuzz(corpus, kSeconds, kSeed, [&](const Input& b) {
    const Sample& s = samples[pick() % samples.size()];  // any codec, width and length against any bytes
    const size_t raw_len = pick() % 8 == 0 ? static_cast<size_t>(pick() % out.size()) : s.raw_len;
    pack::decode_chunk(s.codec, reinterpret_cast<const std::byte*>(b.data()), b.size(), 1 + pick() % 8, out.data(),
                       raw_len);
  });
  MESSAGE("chunk decoders: " << ok << " decoded, " << refused << " refused");
  CHECK(refused > 0);
}

TEST_CASE("fuzz: pack footers only parse or throw") {
  std::vector<Input> corpus;
  std::vector<uint64_t> counts;
  for (size_t n : {1, 3, 17}) {
    std::vector<pack::ChunkEntry> entries;
    for (size_t i = 0; i < n; ++i) {
      pack::ChunkEntry e;
      const auto raw = sample_data(1000 + i * 70000, 1);
      e.id = pack::chunk_id_of(raw.data(), raw.size());
      e.offset = i * 1000;
      e.raw_len = raw.size();
      e.codec = i % 2 ? pack::Codec::kShuffleLz4 : pack::Codec::kRaw;
      e.elem_size = 2;
      if (e.codec == pack::Codec::kRaw) {
        e.block_sums = pack::block_sums_of(raw.data(), raw.size());
        e.stored_len = raw.size();
      } else {
        e.stored_len = 500;
      }
      e.stored_sum = 42 + i;
      entries.push_back(e);
    }
    corpus.push_back(pack::encode_footer(entries));
    counts.push_back(n);
  }
  std::mt19937_64 pick(kSeed);
  auto [ok, refused] = fuzz(corpus, kSeconds, kSeed, [&](const Input& b) {
    const uint64_t count = pick() % 4 == 0 ? pick() >> (pick() % 64) : counts[pick() % counts.size()];
    pack::decode_footer(b, count);
  });
  MESSAGE("pack footers: " << ok << " parsed, " << refused << " refused");
  CHECK(refused > 0);
}

TEST_CASE("fuzz: layout and id-list blobs only decode or throw") {
  std::vector<Input> corpus;
  std::vector<size_t> ranks;
  for (size_t rank : {0, 1, 2, 3}) {
    std::vector<catalog::Piece> pieces;
    for (int64_t i = 0; i < 5; ++i) {
      catalog::Piece p;
      for (size_t d = 0; d < rank; ++d) {
        p.box.offsets.push_back(d == 0 ? i * 300 : 0);
        p.box.sizes.push_back(d == 0 ? 300 : 7);
      }
      p.chunk.bytes[0] = static_cast<uint8_t>(i);
      pieces.push_back(p);
      if (rank == 0) break;
    }
    corpus.push_back(catalog::encode_pieces(pieces, rank));
    ranks.push_back(rank);
  }
  corpus.push_back(catalog::encode_ids({1, 2, 3, 1000, 1 << 30}));
  std::mt19937_64 pick(kSeed);
  auto [ok, refused] = fuzz(corpus, kSeconds, kSeed, [&](const Input& b) {
    if (pick() % 3 == 0) {
      catalog::decode_ids(b, "fuzz");
      return;
    }
    const size_t rank = ranks[pick() % ranks.size()];
    Box within;
    for (size_t d = 0; d < rank; ++d) {
      within.offsets.push_back(static_cast<int64_t>(pick() % 600));
      within.sizes.push_back(static_cast<int64_t>(pick() % 600));
    }
    catalog::decode_pieces(b, rank, "fuzz", pick() % 2 ? &within : nullptr);
  });
  MESSAGE("catalog blobs: " << ok << " decoded, " << refused << " refused");
  CHECK(refused > 0);
}

TEST_CASE("fuzz: rank manifests only decode or throw") {
  std::vector<Input> corpus;
  for (int variant = 0; variant < 3; ++variant) {
    engine::RankManifest m;
    m.rank = variant;
    for (int t = 0; t <= variant; ++t) {
      catalog::TensorRecord rec;
      rec.name = "layer." + std::to_string(t) + ".weight";
      rec.dtype = "bfloat16";
      rec.elem_size = 2;
      rec.shape = {64, 32};
      catalog::Piece p;
      p.box = Box{{0, 0}, {64, 32}};
      p.chunk.bytes[1] = static_cast<uint8_t>(t);
      rec.pieces.push_back(p);
      m.tensors.push_back(rec);
    }
    m.values.push_back(catalog::ValueRecord{"step", int64_t{variant}});
    m.values.push_back(catalog::ValueRecord{"tag", std::string("run")});
    pack::PackInfo info;
    info.name = "0123.pack";
    info.size = 4096;
    pack::ChunkEntry e;
    e.raw_len = e.stored_len = 4096;
    e.block_sums = {1};
    info.chunks.push_back(e);
    m.packs.push_back(info);
    corpus.push_back(engine::encode_manifest(m));
  }
  auto [ok, refused] = fuzz(corpus, kSeconds, kSeed, [&](const Input& b) { engine::decode_manifest(b); });
  MESSAGE("manifests: " << ok << " decoded, " << refused << " refused");
  CHECK(refused > 0);
}
