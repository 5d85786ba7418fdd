#include "pack/huffman.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <queue>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tessera::pack::huffman {
namespace {

// The bit-packing loops are built twice: for the x86-64 baseline and for
// x86-64-v3 (BMI2's shlx/shrx shift by a register in one uop); the loader
// picks one for the CPU (ifunc).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TESSERA_HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TESSERA_HOT_CLONES
#endif

constexpr uint32_t kTableSize = 1u << kMaxCodeLen;
constexpr uint32_t kTableMask = kTableSize - 1;

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Symbols [first[k], first[k] + size[k]) belong to stream k.
struct Split {
  size_t first[kStreams];
  size_t size[kStreams];
};
Split split_of(size_t count) {
  Split s;
  const size_t q = (count + kStreams - 1) / kStreams;
  for (size_t k = 0; k < kStreams; ++k) {
    s.first[k] = std::min(count, k * q);
    s.size[k] = std::min(count, (k + 1) * q) - s.first[k];
  }
  return s;
}

// Huffman code lengths for the nonzero counts (at least two), limited to
// kMaxCodeLen with the length-count adjustment of JPEG (ITU T.81 Annex K.3),
// then handed out by count: the most frequent symbols get the shortest codes.
void build_lengths(const uint64_t counts[256], uint8_t lengths[256]) {
  std::vector<std::pair<uint64_t, int>> syms;  // (count, symbol)
  for (int s = 0; s < 256; ++s)
    if (counts[s]) syms.emplace_back(counts[s], s);
  const size_t m = syms.size();
  // Plain Huffman: nodes 0..m-1 are leaves, then the internal nodes.
  std::vector<int> parent(2 * m, -1);
  using Item = std::pair<uint64_t, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  for (size_t i = 0; i < m; ++i) heap.emplace(syms[i].first, static_cast<int>(i));
  int next = static_cast<int>(m);
  while (heap.size() > 1) {
    Item a = heap.top();
    heap.pop();
    Item b = heap.top();
    heap.pop();
    parent[a.second] = parent[b.second] = next;
    heap.emplace(a.first + b.first, next++);
  }
  std::vector<int> depth(static_cast<size_t>(next), 0);
  for (int i = next - 2; i >= 0; --i) depth[i] = depth[parent[i]] + 1;  // parents have larger ids
  uint32_t bl_count[512] = {};
  int max_len = 0;
  for (size_t i = 0; i < m; ++i) {
    ++bl_count[depth[i]];
    max_len = std::max(max_len, depth[i]);
  }
  for (int i = max_len; i > kMaxCodeLen; --i) {
    while (bl_count[i] > 0) {
      int j = i - 2;
      while (bl_count[j] == 0) --j;
      bl_count[i] -= 2;
      bl_count[i - 1] += 1;
      bl_count[j + 1] += 2;
      bl_count[j] -= 1;
    }
  }
  std::sort(syms.begin(), syms.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::memset(lengths, 0, 256);
  size_t i = 0;
  for (int len = 1; len <= kMaxCodeLen; ++len)
    for (uint32_t c = 0; c < bl_count[len]; ++c) lengths[syms[i++].second] = static_cast<uint8_t>(len);
}

// Canonical codes, bit-reversed for LSB-first output. Returns false if the
// lengths do not form a complete code of at least two symbols.
bool canonical_codes(const uint8_t lengths[256], uint16_t codes[256]) {
  uint32_t bl_count[kMaxCodeLen + 1] = {};
  uint32_t kraft = 0;
  for (int s = 0; s < 256; ++s) {
    if (lengths[s] > kMaxCodeLen) return false;
    if (lengths[s]) {
      ++bl_count[lengths[s]];
      kraft += kTableSize >> lengths[s];
    }
  }
  if (kraft != kTableSize) return false;  // also rules out a single symbol (length >= 1 gives half)
  uint32_t next_code[kMaxCodeLen + 1] = {};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxCodeLen; ++len) {
    code = (code + bl_count[len - 1]) << 1;
    next_code[len] = code;
  }
  for (int s = 0; s < 256; ++s) {
    const int len = lengths[s];
    if (!len) continue;
    uint32_t c = next_code[len]++, r = 0;
    for (int b = 0; b < len; ++b) r |= ((c >> b) & 1u) << (len - 1 - b);
    codes[s] = static_cast<uint16_t>(r);
  }
  return true;
}

void histogram4(const uint8_t* in, const Split& sp, uint32_t hist[kStreams][256]) {
  std::memset(hist, 0, sizeof(uint32_t) * kStreams * 256);
  const uint8_t* p[kStreams];
  for (size_t k = 0; k < kStreams; ++k) p[k] = in + sp.first[k];
  const size_t common = sp.size[kStreams - 1];  // the last stream is the shortest
  size_t i = 0;
  for (; i + 4 <= common; i += 4) {
    const uint32_t a = load32(p[0] + i), b = load32(p[1] + i), c = load32(p[2] + i), d = load32(p[3] + i);
    for (int s = 0; s < 32; s += 8) {
      ++hist[0][(a >> s) & 0xff];
      ++hist[1][(b >> s) & 0xff];
      ++hist[2][(c >> s) & 0xff];
      ++hist[3][(d >> s) & 0xff];
    }
  }
  for (size_t k = 0; k < kStreams; ++k)
    for (size_t j = i; j < sp.size[k]; ++j) ++hist[k][p[k][j]];
}

}  // namespace

Plan plan(const uint8_t* in, size_t count) {
  Plan pl;
  if (count == 0 || count > kMaxCount) return pl;
  const Split sp = split_of(count);
  uint32_t hist[kStreams][256];
  histogram4(in, sp, hist);
  uint64_t counts[256];
  for (int s = 0; s < 256; ++s) {
    counts[s] = uint64_t{hist[0][s]} + hist[1][s] + hist[2][s] + hist[3][s];
    pl.symbols += counts[s] != 0;
  }
  if (pl.symbols < 2) return pl;
  build_lengths(counts, pl.lengths);
  pl.total = kHeaderBytes;
  for (size_t k = 0; k < kStreams; ++k) {
    uint64_t bits = 0;
    for (int s = 0; s < 256; ++s) bits += uint64_t{hist[k][s]} * pl.lengths[s];
    pl.stream_bytes[k] = (bits + 7) / 8;
    pl.total += pl.stream_bytes[k];
  }
  return pl;
}

double sampled_entropy(const uint8_t* in, size_t count, size_t stride) {
  constexpr size_t kPieces = 4, kPiece = 4096;
  uint32_t hist[256] = {};
  size_t n = 0;
  if (count <= kPieces * kPiece) {
    for (size_t i = 0; i < count; ++i) ++hist[in[i * stride]];
    n = count;
  } else {
    for (size_t p = 0; p < kPieces; ++p) {
      const uint8_t* s = in + (count - kPiece) / (kPieces - 1) * p * stride;
      for (size_t i = 0; i < kPiece; ++i) ++hist[s[i * stride]];
    }
    n = kPieces * kPiece;
  }
  if (n == 0) return 0;
  double h = 0;
  for (uint32_t c : hist)
    if (c) h -= c * std::log2(static_cast<double>(c) / static_cast<double>(n));
  return h / static_cast<double>(n);
}

TESSERA_HOT_CLONES void encode(const uint8_t* in, size_t count, const Plan& pl, uint8_t* out) {
  uint16_t codes[256] = {};
  if (!canonical_codes(pl.lengths, codes)) throw std::logic_error("huffman::encode: plan has no valid code");
  uint32_t table[256];  // reversed code | length << 24
  for (int s = 0; s < 256; ++s) table[s] = codes[s] | (uint32_t{pl.lengths[s]} << 24);
  for (int j = 0; j < 128; ++j) out[j] = static_cast<uint8_t>(pl.lengths[2 * j] | (pl.lengths[2 * j + 1] << 4));
  uint8_t* p[kStreams];
  uint8_t* end[kStreams];
  uint8_t* q = out + kHeaderBytes;
  for (size_t k = 0; k < kStreams; ++k) {
    const uint32_t len = static_cast<uint32_t>(pl.stream_bytes[k]);
    std::memcpy(out + 128 + 4 * k, &len, 4);
    p[k] = q;
    q += pl.stream_bytes[k];
    end[k] = q;
  }
  const Split sp = split_of(count);
  const uint8_t* src[kStreams];
  for (size_t k = 0; k < kStreams; ++k) src[k] = in + sp.first[k];
  uint64_t acc[kStreams] = {};
  unsigned nacc[kStreams] = {};
  // Main part: streams in pairs, one 8-byte store per 4 or 5 codes (<= 55
  // bits). It stops 64 symbols before the end of the shortest stream: those
  // take at least 64 bits, so every store lands inside its own stream.
  const size_t last = sp.size[kStreams - 1];
  const size_t bulk = last > 64 ? (last - 64) / 20 * 20 : 0;
  // With enough symbols to pay for building it, a table of symbol pairs
  // (both codes, up to 22 bits) halves the work; it is filled only for pairs
  // of symbols that occur.
  int present[256];
  size_t m = 0;
  for (int s = 0; s < 256; ++s)
    if (pl.lengths[s]) present[m++] = s;
  thread_local std::unique_ptr<uint32_t[]> pair_table;
  const bool pairs = bulk >= 4 * m * m;
  if (pairs) {
    if (!pair_table) pair_table.reset(new uint32_t[65536]);
    for (size_t x = 0; x < m; ++x)
      for (size_t y = 0; y < m; ++y) {
        const int s0 = present[x], s1 = present[y];
        const uint32_t l0 = pl.lengths[s0], l1 = pl.lengths[s1];
        pair_table[s0 | s1 << 8] = (codes[s0] | uint32_t{codes[s1]} << l0) | (l0 + l1) << 24;
      }
  }
  // Two streams at a time, in plain locals: four would not fit in the
  // registers, and arrays indexed in a loop would live in memory.
  for (size_t k = 0; k < kStreams; k += 2) {
    const uint8_t *s0 = src[k], *s1 = src[k + 1];
    uint8_t *o0 = p[k], *o1 = p[k + 1];
    uint64_t a0 = 0, a1 = 0;
    unsigned n0 = 0, n1 = 0;
#define TESSERA_PUT(k, j)                      \
  {                                            \
    const uint32_t e = table[s##k[i + j]];     \
    a##k |= uint64_t{e & 0xffff} << n##k;      \
    n##k += e >> 24;                           \
  }
#define TESSERA_PUT_PAIR(k, j)                                  \
  {                                                             \
    uint16_t two;                                               \
    std::memcpy(&two, s##k + i + j, 2);                         \
    const uint32_t e = pt[two];                                 \
    a##k |= uint64_t{e & 0xffffff} << n##k;                     \
    n##k += e >> 24;                                            \
  }
#define TESSERA_FLUSH(k)         \
  store64(o##k, a##k);           \
  o##k += n##k >> 3;             \
  a##k >>= (n##k & ~7u);         \
  n##k &= 7;
    if (pairs) {
      const uint32_t* pt = pair_table.get();
      for (size_t i = 0; i < bulk; i += 4) {  // 2 pairs: <= 44 bits
        TESSERA_PUT_PAIR(0, 0) TESSERA_PUT_PAIR(1, 0) TESSERA_PUT_PAIR(0, 2) TESSERA_PUT_PAIR(1, 2)
        TESSERA_FLUSH(0) TESSERA_FLUSH(1)
      }
    } else {
      for (size_t i = 0; i < bulk; i += 5) {  // 5 codes: <= 55 bits
        TESSERA_PUT(0, 0) TESSERA_PUT(1, 0) TESSERA_PUT(0, 1) TESSERA_PUT(1, 1) TESSERA_PUT(0, 2)
        TESSERA_PUT(1, 2) TESSERA_PUT(0, 3) TESSERA_PUT(1, 3) TESSERA_PUT(0, 4) TESSERA_PUT(1, 4)
        TESSERA_FLUSH(0) TESSERA_FLUSH(1)
      }
    }
#undef TESSERA_FLUSH
#undef TESSERA_PUT_PAIR
#undef TESSERA_PUT
    p[k] = o0, p[k + 1] = o1;
    acc[k] = a0, acc[k + 1] = a1;
    nacc[k] = n0, nacc[k + 1] = n1;
  }
  // The rest of each stream, a byte at a time.
  for (size_t k = 0; k < kStreams; ++k) {
    for (size_t i = bulk; i < sp.size[k]; ++i) {
      const uint32_t e = table[src[k][i]];
      acc[k] |= uint64_t{e & 0xffff} << nacc[k];
      nacc[k] += e >> 24;
      while (nacc[k] >= 8) {
        *p[k]++ = static_cast<uint8_t>(acc[k]);
        acc[k] >>= 8;
        nacc[k] -= 8;
      }
    }
    if (nacc[k]) *p[k]++ = static_cast<uint8_t>(acc[k]);
    if (p[k] != end[k]) throw std::logic_error("huffman::encode: stream size differs from its plan");
  }
}

TESSERA_HOT_CLONES size_t decode(const uint8_t* in, size_t avail, uint8_t* out, size_t count) {
  auto bad = [](const std::string& what) { return std::runtime_error("huffman plane is malformed: " + what); };
  if (avail < kHeaderBytes) throw bad("header cut short");
  uint8_t lengths[256];
  for (int j = 0; j < 128; ++j) {
    lengths[2 * j] = in[j] & 0x0f;
    lengths[2 * j + 1] = in[j] >> 4;
  }
  uint16_t codes[256];
  if (!canonical_codes(lengths, codes)) throw bad("code lengths do not form a complete code");
  uint64_t stream_len[kStreams];
  uint64_t total = kHeaderBytes;
  for (size_t k = 0; k < kStreams; ++k) {
    stream_len[k] = load32(in + 128 + 4 * k);
    total += stream_len[k];
  }
  if (total > avail) throw bad("streams run past the end of the data");
  // Decode table: the low kMaxCodeLen bits of the bit buffer -> symbol | length << 8.
  uint16_t table[kTableSize];
  for (int s = 0; s < 256; ++s) {
    const uint32_t len = lengths[s];
    if (!len) continue;
    for (uint32_t j = codes[s]; j < kTableSize; j += 1u << len) table[j] = static_cast<uint16_t>(s | (len << 8));
  }
  // Multi-symbol table for the main loop: as many whole codes (up to 3) as
  // the kMaxCodeLen bits hold -> sym0 | sym1 << 8 | sym2 << 16 | bits << 24 | count << 30.
  uint32_t multi[kTableSize];
  for (uint32_t j = 0; j < kTableSize; ++j) {
    uint32_t e = table[j], bits = e >> 8, out_syms = e & 0xff, n = 1;
    while (n < 3) {
      const uint32_t next = table[(j >> bits) & kTableMask];
      const uint32_t len = next >> 8;
      if (bits + len > static_cast<uint32_t>(kMaxCodeLen)) break;
      out_syms |= (next & 0xff) << (8 * n);
      bits += len;
      ++n;
    }
    multi[j] = out_syms | bits << 24 | n << 30;
  }
  const Split sp = split_of(count);
  const uint8_t* base[kStreams];
  uint8_t* dst[kStreams];
  uint8_t* dst_end[kStreams];
  uint64_t pos[kStreams] = {};  // bits consumed
  const uint8_t* q = in + kHeaderBytes;
  for (size_t k = 0; k < kStreams; ++k) {
    base[k] = q;
    q += stream_len[k];
    dst[k] = out + sp.first[k];
    dst_end[k] = dst[k] + sp.size[k];
  }
  // Interleaved main part: refill (>= 57 bits) with one 8-byte load, then 5
  // lookups of <= 11 bits, each giving 1 to 3 symbols (stored as 4 bytes).
  // Batches are sized so that no load passes the end of its stream and no
  // store passes the end of its stream's output.
  {
    // Plain locals, as in encode(): the byte stores could alias arrays.
    const uint8_t *b0 = base[0], *b1 = base[1], *b2 = base[2], *b3 = base[3];
    uint8_t *d0 = dst[0], *d1 = dst[1], *d2 = dst[2], *d3 = dst[3];
    uint64_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
    for (;;) {
      size_t batch = SIZE_MAX;
      for (size_t k = 0; k < kStreams; ++k) {
        const uint64_t at = k == 0 ? p0 : k == 1 ? p1 : k == 2 ? p2 : p3;
        const uint8_t* d = k == 0 ? d0 : k == 1 ? d1 : k == 2 ? d2 : d3;
        const uint64_t room = stream_len[k] >= 8 ? (stream_len[k] - 8) * 8 : 0;  // at <= room keeps loads inside
        batch = std::min<uint64_t>(batch, at <= room ? (room - at) / 55 + 1 : 0);
        const size_t left = static_cast<size_t>(dst_end[k] - d);
        batch = std::min<size_t>(batch, left >= 16 ? (left - 16) / 15 + 1 : 0);  // <= 15 symbols + 1 byte over
      }
      if (batch == 0) break;
      for (size_t b = 0; b < batch; ++b) {
        uint64_t w0 = load64(b0 + (p0 >> 3)) >> (p0 & 7);
        uint64_t w1 = load64(b1 + (p1 >> 3)) >> (p1 & 7);
        uint64_t w2 = load64(b2 + (p2 >> 3)) >> (p2 & 7);
        uint64_t w3 = load64(b3 + (p3 >> 3)) >> (p3 & 7);
#define TESSERA_GET(k)                                    \
  {                                                       \
    const uint32_t e = multi[w##k & kTableMask];          \
    std::memcpy(d##k, &e, 4);                             \
    d##k += e >> 30;                                      \
    w##k >>= (e >> 24) & 15;                              \
    p##k += (e >> 24) & 15;                               \
  }
#define TESSERA_GET4 TESSERA_GET(0) TESSERA_GET(1) TESSERA_GET(2) TESSERA_GET(3)
        TESSERA_GET4 TESSERA_GET4 TESSERA_GET4 TESSERA_GET4 TESSERA_GET4
#undef TESSERA_GET4
#undef TESSERA_GET
      }
    }
    pos[0] = p0, pos[1] = p1, pos[2] = p2, pos[3] = p3;
    dst[0] = d0, dst[1] = d1, dst[2] = d2, dst[3] = d3;
  }
  // The rest of each stream, one symbol per (bounds-checked) load.
  for (size_t k = 0; k < kStreams; ++k) {
    const uint64_t len = stream_len[k];
    for (uint8_t* d = dst[k]; d < dst_end[k]; ++d) {
      const uint64_t at = pos[k] >> 3;
      uint64_t word = 0;
      if (at + 8 <= len) {
        word = load64(base[k] + at);
      } else if (at < len) {
        uint8_t tmp[8] = {};
        std::memcpy(tmp, base[k] + at, len - at);
        word = load64(tmp);
      }
      const uint16_t e = table[(word >> (pos[k] & 7)) & kTableMask];
      *d = static_cast<uint8_t>(e);
      pos[k] += (e >> 8);
    }
    if ((pos[k] + 7) / 8 != len) throw bad("stream " + std::to_string(k) + " length does not match its symbols");
  }
  return static_cast<size_t>(total);
}

}  // namespace tessera::pack::huffman
