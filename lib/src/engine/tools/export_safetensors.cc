// export_safetensors(): a checkpoint's tensors as consolidated safetensors
// files (see tessera/export.h for the format and the guarantees).
//
// Plan first, from the catalog alone: this file selects and checks the
// tensors, and plan::plan_export (plan/export_plan.h) decides which file each
// goes to, at which offsets, and every header; so all headers are known
// before any data is read. Then each file is created at its final size and
// filled by its tensors' pieces: one stored chunk per piece, read and checked
// by the chunk reader, its rows written with pwrite at the offsets
// plan::region_byte_ranges gives for the piece's box within the row-major
// tensor.

#include <atomic>
#include <bit>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unistd.h>

#include "engine/chunk_reader.h"
#include "engine/messages.h"
#include "engine/tools/export_safetensors.h"
#include "io/env.h"
#include "io/progress_meter.h"
#include "io/thread_pool.h"
#include "pack/pack_cache.h"
#include "plan/export_plan.h"
#include "plan/read_plan.h"
#include "tessera/error.h"
#include "tessera/export.h"

namespace tessera::engine {
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

// ".NAME.tmp-PID" for an export file NAME: what an export writes before
// renaming (a killed export leaves them).
std::string temp_name(const std::string& name) { return "." + name + ".tmp-" + std::to_string(::getpid()); }

bool is_temp_name(const std::string& name) {
  const size_t tmp = name.rfind(".tmp-");
  if (name.size() < 2 || name[0] != '.' || tmp == std::string::npos || tmp + 5 == name.size()) return false;
  return name.find_first_not_of("0123456789", tmp + 5) == std::string::npos && plan::is_export_file_name(name.substr(1, tmp - 1));
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

// The tensors an export writes, and the catalog records their bytes come from.
struct Selection {
  std::vector<catalog::TensorRecord> records;  // the checkpoint's tensors, by name
  std::vector<plan::ExportTensor> tensors;     // the exported ones, by name
  std::vector<size_t> record_of;               // per exported tensor: index into records
};

void check_options(const ExportOptions& options) {
  if (options.max_shard_bytes == 0) throw InvalidArgument("export: max_shard_bytes must be at least 1");
  for (const auto& [k, v] : options.metadata)
    if (!valid_utf8(k) || !valid_utf8(v))
      throw InvalidArgument("export: metadata entry '" + k + "' is not valid UTF-8, which safetensors requires");
}

// The checkpoint's tensor records; counts the values the prefix selects.
std::vector<catalog::TensorRecord> read_records(Store::Impl& impl, const std::string& checkpoint,
                                                const ExportOptions& options, ExportResult& result) {
  std::lock_guard lock(impl.mu);
  const auto ckpt = require_checkpoint(impl, checkpoint);
  for (const auto& v : impl.catalog.values(ckpt.id))
    if (v.name.rfind(options.prefix, 0) == 0) ++result.values_skipped;
  return impl.catalog.tensors(ckpt.id);
}

// What the plan sees of `rec`, once its output name fits a safetensors header
// and its pieces tile its shape.
plan::ExportTensor export_tensor(const std::string& checkpoint, const catalog::TensorRecord& rec,
                                 const DtypeName& dt, const ExportOptions& options) {
  if (rec.elem_size != dt.size)
    throw CorruptionError(where(checkpoint, rec.name) + ": catalog says element size " +
                          std::to_string(rec.elem_size) + " for dtype " + rec.dtype);
  plan::ExportTensor t{options.strip_prefix ? rec.name.substr(options.prefix.size()) : rec.name, dt.safetensors,
                       rec.shape, rec.elem_size};
  if (t.name.empty())
    throw InvalidArgument(where(checkpoint, rec.name) + ": its name is the prefix; stripped, it would have none");
  if (t.name == "__metadata__")
    throw InvalidArgument(where(checkpoint, rec.name) + ": '__metadata__' is reserved in safetensors headers");
  if (!valid_utf8(t.name))
    throw InvalidArgument(where(checkpoint, rec.name) + ": the name is not valid UTF-8, which safetensors requires");
  check_pieces(checkpoint, rec);
  return t;
}

// The tensors the prefix selects, less those of dtypes safetensors lacks
// (listed in result.skipped with skip_unsupported, else an error).
Selection select_tensors(Store::Impl& impl, const std::string& checkpoint, const ExportOptions& options,
                         ExportResult& result) {
  Selection s;
  s.records = read_records(impl, checkpoint, options, result);
  uint64_t matched = 0;
  for (size_t i = 0; i < s.records.size(); ++i) {
    const catalog::TensorRecord& rec = s.records[i];
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
    s.tensors.push_back(export_tensor(checkpoint, rec, *dt, options));
    s.record_of.push_back(i);
  }
  if (matched == 0)
    throw NotFoundError("checkpoint '" + checkpoint + "' has no tensors" +
                        (options.prefix.empty() ? std::string() : " starting with '" + options.prefix + "'"));
  if (s.tensors.empty())
    throw InvalidArgument("checkpoint '" + checkpoint + "': all " + std::to_string(matched) +
                          " tensors selected have dtypes safetensors lacks; nothing to export");
  return s;
}

// What `out_dir` (created if missing) holds of earlier exports.
struct EarlierExport {
  std::set<std::string> files;  // export files
  std::set<std::string> stale;  // temporary files of a killed export
};

EarlierExport prepare_out_dir(Env& env, const std::string& out_dir, bool overwrite) {
  if (!env.exists(out_dir)) {
    env.make_dirs(out_dir);
    env.sync_dir(io::parent_dir(out_dir));
  }
  EarlierExport earlier;
  for (const DirEntry& e : env.list_dir(out_dir)) {
    if (plan::is_export_file_name(e.name)) earlier.files.insert(e.name);
    else if (is_temp_name(e.name)) earlier.stale.insert(e.name);
  }
  if (!earlier.files.empty() && !overwrite)
    throw AlreadyExistsError("'" + out_dir + "/" + *earlier.files.begin() + "' exists: '" + out_dir +
                             "' holds an earlier export");
  return earlier;
}

using ChunkLocations = std::unordered_map<pack::ChunkId, catalog::ChunkLocation, pack::ChunkIdHash>;

// Where every chunk the selected tensors' pieces reference is, all looked up before reading.
ChunkLocations locate_chunks(Store::Impl& impl, const std::string& checkpoint, const Selection& s) {
  ChunkLocations locations;
  std::lock_guard lock(impl.mu);
  for (const size_t r : s.record_of)
    for (const catalog::Piece& p : s.records[r].pieces) {
      if (locations.count(p.chunk)) continue;
      auto loc = impl.catalog.locate(p.chunk);
      if (!loc)
        throw CorruptionError(where(checkpoint, s.records[r].name) + ": chunk " + p.chunk.hex() +
                              " is missing from the catalog");
      locations.emplace(p.chunk, std::move(*loc));
    }
  return locations;
}

// Writing the planned files under temporary names in the output directory.
class ExportWriter {
 public:
  ExportWriter(Store::Impl& impl, const std::string& checkpoint, const std::string& out_dir, const Selection& s,
               ChunkLocations locations, const ExportOptions& options, uint64_t total_size)
      : impl_(impl), checkpoint_(checkpoint), out_dir_(out_dir), selection_(s), locations_(std::move(locations)),
        temps_(impl.env), packs_(impl.env, impl.packs_dir()), pool_(options.threads),
        meter_(options.progress, "export", total_size) {}

  std::string temp_path(const std::string& name) const { return out_dir_ + "/" + temp_name(name); }

  // Creates `f` at its final size, writes its header and fills it piece by piece.
  ExportedFile write_data_file(const plan::ExportFile& f) {
    PositionalFile out = create(f.name, f.size());
    out.write_at(0, f.header.data(), f.header.size());
    struct Job {
      const plan::PlacedTensor* tensor;
      const catalog::Piece* piece;
    };
    std::vector<Job> jobs;
    for (const plan::PlacedTensor& t : f.tensors)
      for (const catalog::Piece& p : record(t).pieces) jobs.push_back(Job{&t, &p});
    pool_.parallel_for(jobs.size(), [&](size_t i) {
      write_piece(out, f.header.size() + jobs[i].tensor->begin, record(*jobs[i].tensor), *jobs[i].piece);
    });
    out.sync_and_close();
    ExportedFile ef{f.name, f.size(), f.data_bytes, {}};
    for (const plan::PlacedTensor& t : f.tensors) ef.tensors.push_back(selection_.tensors[t.tensor].name);
    return ef;
  }

  void write_index(const std::string& json) {
    PositionalFile out = create(plan::kExportIndexFile, json.size());
    out.write_at(0, json.data(), json.size());
    out.sync_and_close();
  }

  // The temporary files are in place under their final names: no longer this object's to remove.
  void published() { temps_.release(); }
  void finish(ExportResult& result) {
    meter_.finish();
    result.bytes_read = bytes_read_;
    result.chunks_read = chunks_read_;
  }

 private:
  const catalog::TensorRecord& record(const plan::PlacedTensor& t) const {
    return selection_.records[selection_.record_of[t.tensor]];
  }

  PositionalFile create(const std::string& name, uint64_t size) {
    const std::string path = temp_path(name);
    temps_.add(path);
    return PositionalFile(impl_.env, path, size);
  }

  // Reads the piece's chunk (checked) and writes its rows into the tensor
  // whose data starts at `tensor_start` of `out`.
  void write_piece(const PositionalFile& out, uint64_t tensor_start, const catalog::TensorRecord& rec,
                   const catalog::Piece& p) {
    const catalog::ChunkLocation& loc = locations_.at(p.chunk);
    const std::string context = where(checkpoint_, rec.name);
    const uint64_t elem = static_cast<uint64_t>(rec.elem_size);
    if (loc.entry.raw_len != static_cast<uint64_t>(p.box.volume()) * elem)
      throw CorruptionError(context + ": chunk " + p.chunk.hex() + " in pack '" + loc.pack + "': catalog says " +
                            std::to_string(loc.entry.raw_len) + " bytes, the box needs " +
                            std::to_string(static_cast<uint64_t>(p.box.volume()) * elem));
    const std::vector<std::byte> raw = read_raw_chunk(packs_, loc, context);  // checked
    bytes_read_ += loc.entry.stored_len;
    ++chunks_read_;
    uint64_t src = 0;
    for (const plan::ByteRange& r : plan::region_byte_ranges(Box::whole(rec.shape), p.box, elem)) {
      out.write_at(tensor_start + r.begin, raw.data() + src, r.size());
      src += r.size();
    }
    meter_.add(src);
  }

  Store::Impl& impl_;
  const std::string& checkpoint_;
  const std::string& out_dir_;
  const Selection& selection_;
  const ChunkLocations locations_;
  TempFiles temps_;
  pack::PackCache packs_;
  io::ThreadPool pool_;
  io::ProgressMeter meter_;
  std::atomic<uint64_t> bytes_read_{0}, chunks_read_{0};
};

// Renames the written files into place (data files, then the index), then
// removes what is left of an earlier export (with overwrite); returns the
// names removed.
std::vector<std::string> publish(Env& env, const std::string& out_dir, const plan::ExportPlan& plan,
                                 ExportWriter& writer, EarlierExport earlier, bool overwrite) {
  std::vector<std::string> order;
  for (const plan::ExportFile& f : plan.files) order.push_back(f.name);
  if (!plan.index.empty()) order.push_back(plan::kExportIndexFile);
  for (const std::string& name : order) env.rename(writer.temp_path(name), out_dir + "/" + name);
  writer.published();
  env.sync_dir(out_dir);
  const std::set<std::string> written(order.begin(), order.end());
  if (overwrite) earlier.files.insert(earlier.stale.begin(), earlier.stale.end());
  std::vector<std::string> removed;
  for (const std::string& name : earlier.files)
    if (!written.count(name)) {
      env.remove_file(out_dir + "/" + name);
      removed.push_back(name);
    }
  if (!removed.empty()) env.sync_dir(out_dir);
  return removed;
}

}  // namespace

std::optional<std::string> safetensors_dtype(const std::string& dtype) {
  if (const DtypeName* d = find_dtype(dtype)) return std::string(d->safetensors);
  return std::nullopt;
}

ExportResult export_safetensors(Store::Impl& impl, const std::string& checkpoint, const std::string& out_dir,
                                const ExportOptions& options) {
  check_options(options);
  ExportResult result;
  const Selection selection = select_tensors(impl, checkpoint, options, result);
  const plan::ExportPlan plan = plan::plan_export(selection.tensors, options.max_shard_bytes, options.metadata);
  result.tensors = selection.tensors.size();
  result.total_size = plan.total_size;

  EarlierExport earlier = prepare_out_dir(impl.env, out_dir, options.overwrite);
  ExportWriter writer(impl, checkpoint, out_dir, selection, locate_chunks(impl, checkpoint, selection), options,
                      plan.total_size);
  for (const plan::ExportFile& f : plan.files) result.files.push_back(writer.write_data_file(f));
  if (!plan.index.empty()) {
    writer.write_index(plan.index);
    result.index_file = plan::kExportIndexFile;
  }
  result.removed = publish(impl.env, out_dir, plan, writer, std::move(earlier), options.overwrite);
  writer.finish(result);
  return result;
}

}  // namespace tessera::engine
