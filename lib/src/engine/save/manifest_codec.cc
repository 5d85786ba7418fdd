#include "engine/save/manifest_codec.h"

#include <cstring>
#include <stdexcept>

namespace tessera::engine {
namespace {

constexpr uint32_t kManifestVersion = 1;

class Writer {
 public:
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(const std::string& s) {
    u64(s.size());
    out += s;
  }
  void shape(const Shape& s) {
    u64(s.size());
    for (int64_t x : s) i64(x);
  }
  std::string out;
};

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::memcpy(&v, s_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string str() {
    uint64_t n = u64();
    need(n);
    std::string r = s_.substr(pos_, n);
    pos_ += n;
    return r;
  }
  Shape shape() {
    uint64_t n = u64();
    if (n > 64) throw std::runtime_error("manifest: implausible rank " + std::to_string(n));
    Shape s(n);
    for (auto& x : s) x = i64();
    return s;
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  void need(uint64_t n) {
    if (n > s_.size() - pos_) throw std::runtime_error("manifest: truncated");
  }
  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

std::string encode_manifest(const RankManifest& m) {
  Writer w;
  w.u64(kManifestVersion);
  w.i64(m.rank);
  w.u64(m.tensors.size());
  for (const auto& t : m.tensors) {
    w.str(t.name);
    w.str(t.dtype);
    w.i64(t.elem_size);
    w.shape(t.shape);
    w.u64(t.pieces.size());
    for (const auto& p : t.pieces) {
      w.shape(p.box.offsets);
      w.shape(p.box.sizes);
      w.out.append(reinterpret_cast<const char*>(p.chunk.bytes.data()), 16);
    }
  }
  w.u64(m.values.size());
  for (const auto& v : m.values) {
    w.str(v.name);
    w.u64(v.value.index());
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, Bytes>) w.str(x.data);
          else if constexpr (std::is_same_v<T, std::string>) w.str(x);
          else if constexpr (std::is_same_v<T, double>) {
            uint64_t bits;
            std::memcpy(&bits, &x, 8);
            w.u64(bits);
          } else w.i64(x);
        },
        v.value);
  }
  w.u64(m.packs.size());
  for (const auto& p : m.packs) {
    w.str(p.name);
    w.u64(p.size);
    w.u64(p.chunks.size());
    w.str(pack::encode_footer(p.chunks));
  }
  for (uint64_t s : {m.stats.logical_bytes, m.stats.written_bytes, m.stats.chunks, m.stats.chunks_written, m.stats.packs})
    w.u64(s);
  return std::move(w.out);
}

RankManifest decode_manifest(const std::string& bytes) {
  Reader r(bytes);
  if (uint64_t v = r.u64(); v != kManifestVersion)
    throw std::runtime_error("manifest version " + std::to_string(v) + " from a different tessera build");
  RankManifest m;
  m.rank = r.i64();
  for (uint64_t n = r.u64(), i = 0; i < n; ++i) {
    catalog::TensorRecord t;
    t.name = r.str();
    t.dtype = r.str();
    t.elem_size = r.i64();
    t.shape = r.shape();
    for (uint64_t k = r.u64(), j = 0; j < k; ++j) {
      catalog::Piece p;
      p.box.offsets = r.shape();
      p.box.sizes = r.shape();
      std::string id;
      for (int b = 0; b < 2; ++b) {
        uint64_t half = r.u64();
        id.append(reinterpret_cast<const char*>(&half), 8);
      }
      std::memcpy(p.chunk.bytes.data(), id.data(), 16);
      t.pieces.push_back(std::move(p));
    }
    m.tensors.push_back(std::move(t));
  }
  for (uint64_t n = r.u64(), i = 0; i < n; ++i) {
    catalog::ValueRecord v;
    v.name = r.str();
    switch (r.u64()) {
      case 0: v.value = Bytes{r.str()}; break;
      case 1: v.value = r.i64(); break;
      case 2: {
        uint64_t bits = r.u64();
        double d;
        std::memcpy(&d, &bits, 8);
        v.value = d;
        break;
      }
      case 3: v.value = r.str(); break;
      default: throw std::runtime_error("manifest: unknown value kind");
    }
    m.values.push_back(std::move(v));
  }
  for (uint64_t n = r.u64(), i = 0; i < n; ++i) {
    pack::PackInfo p;
    p.name = r.str();
    p.size = r.u64();
    uint64_t count = r.u64();
    p.chunks = pack::decode_footer(r.str(), count);
    m.packs.push_back(std::move(p));
  }
  m.stats.logical_bytes = r.u64();
  m.stats.written_bytes = r.u64();
  m.stats.chunks = r.u64();
  m.stats.chunks_written = r.u64();
  m.stats.packs = r.u64();
  if (!r.done()) throw std::runtime_error("manifest: trailing bytes");
  return m;
}

}  // namespace tessera::engine
