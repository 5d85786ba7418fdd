// export_safetensors(): a checkpoint's tensors as consolidated safetensors
// files (see tessera/export.h for the format and the guarantees).
//
// Plan first, from the catalog alone: which tensors, in which file, at which
// offsets; so every header is known before any data is read. Then each file
// is created at its final size and filled by its tensors' pieces: one stored
// chunk per piece, read and checked by the chunk reader, its rows written
// with pwrite at the offsets plan::region_byte_ranges gives for the piece's
// box within the row-major tensor.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>

#include "engine/chunk_reader.h"
#include "engine/messages.h"
#include "engine/store_impl.h"
#include "io/env.h"
#include "io/progress_meter.h"
#include "io/thread_pool.h"
#include "pack/pack_cache.h"
#include "plan/read_plan.h"
#include "tessera/error.h"
#include "tessera/export.h"

namespace tessera {
namespace {

// Stored chunks hold the host's bytes; safetensors wants little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors export assumes a little-endian host");

struct DtypeName {
  const char* torch;
  const char* safetensors;
  int64_t size;
};

constexpr DtypeName kDtypes[] = {
    {"float64", "F64", 8},         {"float32", "F32", 4},          {"float16", "F16", 2},
    {"bfloat16", "BF16", 2},       {"int64", "I64", 8},            {"int32", "I32", 4},
    {"int16", "I16", 2},           {"int8", "I8", 1},              {"uint64", "U64", 8},
    {"uint32", "U32", 4},          {"uint16", "U16", 2},           {"uint8", "U8", 1},
    {"bool", "BOOL", 1},           {"float8_e4m3fn", "F8_E4M3", 1}, {"float8_e5m2", "F8_E5M2", 1},
    {"float8_e4m3fnuz", "F8_E4M3FNUZ", 1}, {"float8_e5m2fnuz", "F8_E5M2FNUZ", 1},
    {"float8_e8m0fnu", "F8_E8M0", 1},      {"complex64", "C64", 8},
};

const DtypeName* find_dtype(const std::string& dtype) {
  for (const DtypeName& d : kDtypes)
    if (dtype == d.torch) return &d;
  return nullptr;
}

constexpr const char* kBase = "model";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%05zu-of-%05zu.safetensors", kBase, i + 1, n);
  return buf;
}

// model-NNNNN-of-NNNNN.safetensors (any digit count of at least 5, as written above).
bool is_shard_name(const std::string& name) {
  const std::string head = std::string(kBase) + "-", tail = ".safetensors";
  if (name.size() <= head.size() + tail.size() || name.compare(0, head.size(), head) != 0 ||
      name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
    return false;
  const std::string mid = name.substr(head.size(), name.size() - head.size() - tail.size());
  const size_t of = mid.find("-of-");
  if (of == std::string::npos) return false;
  auto digits = [](const std::string& s) {
    return s.size() >= 5 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  return digits(mid.substr(0, of)) && digits(mid.substr(of + 4));
}

bool is_export_file(const std::string& name) {
  return name == kSingleFile || name == kIndexFile || is_shard_name(name);
}

// ".NAME.tmp-PID" for an export file NAME: what an export writes before
// renaming (a killed export leaves them).
std::string temp_name(const std::string& name) { return "." + name + ".tmp-" + std::to_string(::getpid()); }

bool is_temp_name(const std::string& name) {
  const size_t tmp = name.rfind(".tmp-");
  if (name.size() < 2 || name[0] != '.' || tmp == std::string::npos || tmp + 5 == name.size()) return false;
  return name.find_first_not_of("0123456789", tmp + 5) == std::string::npos && is_export_file(name.substr(1, tmp - 1));
}

// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
// the safetensors header is JSON in UTF-8, and readers reject anything else.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// A JSON string literal: quotes, backslashes and control characters escaped;
// other bytes (valid UTF-8) as they are.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// One tensor of the output.
struct OutTensor {
  const catalog::TensorRecord* rec = nullptr;
  std::string name;      // in the output (prefix stripped or not)
  std::string dtype;     // safetensors dtype
  uint64_t bytes = 0;    // volume * element size
  uint64_t begin = 0;    // data_offsets[0], relative to the data section
};

struct OutFile {
  std::string name;
  std::vector<OutTensor> tensors;  // layout order
  std::string header;              // the 8-byte length and the padded JSON
  uint64_t data_bytes = 0;
  uint64_t size() const { return header.size() + data_bytes; }
};

// Lays out `f.tensors` (largest elements first, then by name, so every
// tensor is aligned to its element size) and builds the header.
void lay_out(OutFile& f, const std::map<std::string, std::string>& metadata) {
  std::stable_sort(f.tensors.begin(), f.tensors.end(), [](const OutTensor& a, const OutTensor& b) {
    return a.rec->elem_size != b.rec->elem_size ? a.rec->elem_size > b.rec->elem_size : a.name < b.name;
  });
  std::string json = "{\"__metadata__\":{\"format\":\"pt\"";
  for (const auto& [k, v] : metadata)
    if (k != "format") json += "," + json_string(k) + ":" + json_string(v);
  json += "}";
  uint64_t offset = 0;
  for (OutTensor& t : f.tensors) {
    t.begin = offset;
    offset += t.bytes;
    json += "," + json_string(t.name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t d = 0; d < t.rec->shape.size(); ++d) json += (d ? "," : "") + std::to_string(t.rec->shape[d]);
    json += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(offset) + "]}";
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  f.data_bytes = offset;
  f.header.resize(8);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) f.header[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  f.header += json;
}

// An output file being written at computed offsets from several threads.
class PositionalFile {
 public:
  PositionalFile(Env& env, const std::string& path, uint64_t size) : file_(env.open_rw_file(path, true)) {
    file_->truncate(0);  // what a killed export left under this name
    file_->truncate(size);
  }
  void write_at(uint64_t offset, const void* data, size_t n) const { file_->write_at(offset, data, n); }
  void sync_and_close() {
    file_->sync();
    file_.reset();
  }

 private:
  std::unique_ptr<RandomRWFile> file_;
};

// Temporary files of this export: removed unless it completes.
class TempFiles {
 public:
  explicit TempFiles(Env& env) : env_(env) {}
  ~TempFiles() {
    for (const auto& p : paths_) {
      try {
        env_.remove_file(p);
      } catch (...) {
      }
    }
  }
  void add(const std::string& path) { paths_.push_back(path); }
  void release() { paths_.clear(); }

 private:
  Env& env_;
  std::vector<std::string> paths_;
};

// The pieces of `t` must tile its shape: inside it, adding up to its volume
// (commit checked that they tile it; this guards what pwrite would leave
// as zeros).
void check_pieces(const std::string& checkpoint, const catalog::TensorRecord& t) {
  const Box whole = Box::whole(t.shape);
  int64_t covered = 0;
  for (const catalog::Piece& p : t.pieces) {
    if (p.box.rank() != whole.rank() || !contains(whole, p.box))
      throw CorruptionError(where(checkpoint, t.name) + ": piece " + to_string(p.box) + " lies outside shape " +
                            to_string(t.shape));
    covered += p.box.volume();
  }
  if (covered != volume(t.shape))
    throw CorruptionError(where(checkpoint, t.name) + ": pieces cover " + std::to_string(covered) + " of " +
                          std::to_string(volume(t.shape)) + " elements");
}

}  // namespace

std::optional<std::string> safetensors_dtype(const std::string& dtype) {
  if (const DtypeName* d = find_dtype(dtype)) return std::string(d->safetensors);
  return std::nullopt;
}

ExportResult export_safetensors(const Store& store, const std::string& checkpoint, const std::string& out_dir,
                                const ExportOptions& options) {
  if (options.max_shard_bytes == 0) throw InvalidArgument("export: max_shard_bytes must be at least 1");
  for (const auto& [k, v] : options.metadata)
    if (!valid_utf8(k) || !valid_utf8(v))
      throw InvalidArgument("export: metadata entry '" + k + "' is not valid UTF-8, which safetensors requires");
  Store::Impl& impl = StoreAccess::impl(store);
  ExportResult result;

  // ---- plan: what goes where, from the catalog ------------------------------
  std::vector<catalog::TensorRecord> records;
  {
    std::lock_guard lock(impl.mu);
    const auto ckpt = require_checkpoint(impl, checkpoint);
    records = impl.catalog.tensors(ckpt.id);
    for (const auto& v : impl.catalog.values(ckpt.id))
      if (v.name.rfind(options.prefix, 0) == 0) ++result.values_skipped;
  }
  std::vector<OutTensor> selected;  // by output name (the catalog orders by name)
  uint64_t matched = 0;
  for (const catalog::TensorRecord& rec : records) {
    if (rec.name.rfind(options.prefix, 0) != 0) continue;
    ++matched;
    const DtypeName* dt = find_dtype(rec.dtype);
    if (!dt) {
      if (options.skip_unsupported) {
        result.skipped.push_back(rec.name + " (" + rec.dtype + ")");
        continue;
      }
      throw InvalidArgument(where(checkpoint, rec.name) + ": dtype " + rec.dtype + " has no safetensors equivalent");
    }
    if (rec.elem_size != dt->size)
      throw CorruptionError(where(checkpoint, rec.name) + ": catalog says element size " +
                            std::to_string(rec.elem_size) + " for dtype " + rec.dtype);
    OutTensor t;
    t.rec = &rec;
    t.name = options.strip_prefix ? rec.name.substr(options.prefix.size()) : rec.name;
    if (t.name.empty())
      throw InvalidArgument(where(checkpoint, rec.name) + ": its name is the prefix; stripped, it would have none");
    if (t.name == "__metadata__")
      throw InvalidArgument(where(checkpoint, rec.name) + ": '__metadata__' is reserved in safetensors headers");
    if (!valid_utf8(t.name))
      throw InvalidArgument(where(checkpoint, rec.name) + ": the name is not valid UTF-8, which safetensors requires");
    t.dtype = dt->safetensors;
    t.bytes = static_cast<uint64_t>(volume(rec.shape)) * static_cast<uint64_t>(rec.elem_size);
    check_pieces(checkpoint, rec);
    selected.push_back(std::move(t));
  }
  if (matched == 0)
    throw NotFoundError("checkpoint '" + checkpoint + "' has no tensors" +
                        (options.prefix.empty() ? std::string() : " starting with '" + options.prefix + "'"));
  if (selected.empty())
    throw InvalidArgument("checkpoint '" + checkpoint + "': all " + std::to_string(matched) +
                          " tensors selected have dtypes safetensors lacks; nothing to export");
  for (const OutTensor& t : selected) result.total_size += t.bytes;
  result.tensors = selected.size();

  // Shards, greedily in name order.
  std::vector<OutFile> files;
  if (result.total_size <= options.max_shard_bytes) {
    files.emplace_back();
    files.back().tensors = std::move(selected);
  } else {
    uint64_t in_current = 0;
    for (OutTensor& t : selected) {
      if (files.empty() || (in_current > 0 && in_current + t.bytes > options.max_shard_bytes)) {
        files.emplace_back();
        in_current = 0;
      }
      in_current += t.bytes;
      files.back().tensors.push_back(std::move(t));
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    files[i].name = files.size() == 1 ? kSingleFile : shard_name(i, files.size());
    lay_out(files[i], options.metadata);
  }

  // ---- the output directory ---------------------------------------------------
  Env& env = impl.env;
  if (!env.exists(out_dir)) {
    env.make_dirs(out_dir);
    env.sync_dir(parent_dir(out_dir));
  }
  std::set<std::string> earlier;  // files of an earlier export
  std::set<std::string> stale;    // temporary files of a killed one
  for (const DirEntry& e : env.list_dir(out_dir)) {
    if (is_export_file(e.name)) earlier.insert(e.name);
    else if (is_temp_name(e.name)) stale.insert(e.name);
  }
  if (!earlier.empty() && !options.overwrite)
    throw AlreadyExistsError("'" + out_dir + "/" + *earlier.begin() + "' exists: '" + out_dir +
                             "' holds an earlier export");

  // Chunk locations, all looked up before reading.
  std::unordered_map<ChunkId, catalog::ChunkLocation, ChunkIdHash> locations;
  {
    std::lock_guard lock(impl.mu);
    for (const OutFile& f : files)
      for (const OutTensor& t : f.tensors)
        for (const catalog::Piece& p : t.rec->pieces) {
          if (locations.count(p.chunk)) continue;
          auto loc = impl.catalog.locate(p.chunk);
          if (!loc)
            throw CorruptionError(where(checkpoint, t.rec->name) + ": chunk " + p.chunk.hex() +
                                  " is missing from the catalog");
          locations.emplace(p.chunk, std::move(*loc));
        }
  }

  // ---- write: each file at its final size, filled piece by piece -------------
  auto temp_path = [&](const std::string& name) { return out_dir + "/" + temp_name(name); };
  TempFiles temps(env);
  pack::PackCache packs(impl.env, impl.packs_dir());
  io::ThreadPool pool(options.threads);
  std::atomic<uint64_t> bytes_read{0}, chunks_read{0};
  io::ProgressMeter meter(options.progress, "export", result.total_size);
  struct Job {
    const OutTensor* tensor;
    const catalog::Piece* piece;
  };
  for (const OutFile& f : files) {
    const std::string path = temp_path(f.name);
    temps.add(path);
    PositionalFile out(env, path, f.size());
    out.write_at(0, f.header.data(), f.header.size());
    const uint64_t data_start = f.header.size();
    std::vector<Job> jobs;
    for (const OutTensor& t : f.tensors)
      for (const catalog::Piece& p : t.rec->pieces) jobs.push_back(Job{&t, &p});
    pool.parallel_for(jobs.size(), [&](size_t i) {
      const OutTensor& t = *jobs[i].tensor;
      const catalog::Piece& p = *jobs[i].piece;
      const catalog::ChunkLocation& loc = locations.at(p.chunk);
      const std::string context = where(checkpoint, t.rec->name);
      const uint64_t elem = static_cast<uint64_t>(t.rec->elem_size);
      if (loc.entry.raw_len != static_cast<uint64_t>(p.box.volume()) * elem)
        throw CorruptionError(context + ": chunk " + p.chunk.hex() + " in pack '" + loc.pack + "': catalog says " +
                              std::to_string(loc.entry.raw_len) + " bytes, the box needs " +
                              std::to_string(static_cast<uint64_t>(p.box.volume()) * elem));
      const std::vector<std::byte> raw = read_raw_chunk(packs, loc, context);  // checked
      bytes_read += loc.entry.stored_len;
      ++chunks_read;
      uint64_t src = 0;
      for (const plan::ByteRange& r : plan::region_byte_ranges(Box::whole(t.rec->shape), p.box, elem)) {
        out.write_at(data_start + t.begin + r.begin, raw.data() + src, r.size());
        src += r.size();
      }
      meter.add(src);
    });
    out.sync_and_close();
    ExportedFile ef;
    ef.name = f.name;
    ef.file_bytes = f.size();
    ef.tensor_bytes = f.data_bytes;
    for (const OutTensor& t : f.tensors) ef.tensors.push_back(t.name);
    result.files.push_back(std::move(ef));
  }
  if (files.size() > 1) {
    std::string json = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(result.total_size) +
                       "\n  },\n  \"weight_map\": {";
    std::vector<std::pair<std::string, std::string>> map;
    for (const OutFile& f : files)
      for (const OutTensor& t : f.tensors) map.emplace_back(t.name, f.name);
    std::sort(map.begin(), map.end());
    for (size_t i = 0; i < map.size(); ++i)
      json += std::string(i ? "," : "") + "\n    " + json_string(map[i].first) + ": " + json_string(map[i].second);
    json += "\n  }\n}\n";
    const std::string path = temp_path(kIndexFile);
    temps.add(path);
    PositionalFile out(env, path, json.size());
    out.write_at(0, json.data(), json.size());
    out.sync_and_close();
    result.index_file = kIndexFile;
  }

  // ---- publish: data files, then the index; then what is left of an earlier export
  std::set<std::string> written;
  for (const OutFile& f : files) written.insert(f.name);
  if (!result.index_file.empty()) written.insert(result.index_file);
  std::vector<std::string> order;
  for (const OutFile& f : files) order.push_back(f.name);
  if (!result.index_file.empty()) order.push_back(result.index_file);
  for (const std::string& name : order) env.rename(temp_path(name), out_dir + "/" + name);
  temps.release();
  env.sync_dir(out_dir);
  if (options.overwrite) earlier.insert(stale.begin(), stale.end());
  for (const std::string& name : earlier)
    if (!written.count(name)) {
      env.remove_file(out_dir + "/" + name);
      result.removed.push_back(name);
    }
  if (!result.removed.empty()) env.sync_dir(out_dir);
  meter.finish();
  result.bytes_read = bytes_read;
  result.chunks_read = chunks_read;
  return result;
}

}  // namespace tessera
