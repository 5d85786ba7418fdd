#include <algorithm>
#include <deque>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "engine/pack_cache.h"
#include "engine/store_impl.h"
#include "engine/view_check.h"
#include "io/thread_pool.h"
#include "pack/pack_reader.h"
#include "plan/read_plan.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"

namespace tessera {
namespace {

// One saved chunk's contribution to one target tensor.
struct ReadJob {
  const std::string* tensor;
  const TensorView* target;
  Box chunk_box;
  Box region;  // chunk_box ∩ target box
  ChunkId chunk;
};

std::string join_first(const std::vector<std::string>& names, size_t limit = 5) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

}  // namespace

LoadResult load(StateDict& state, const Store& store, const std::string& checkpoint, const LoadOptions& options) {
  Store::Impl& impl = store.impl();
  LoadResult result;
  std::vector<catalog::TensorRecord> saved_tensors;
  std::vector<catalog::ValueRecord> saved_values;
  {
    std::lock_guard lock(impl.mu);
    auto ckpt = require_checkpoint(impl, checkpoint);
    saved_tensors = impl.catalog.tensors(ckpt.id);
    saved_values = impl.catalog.values(ckpt.id);
  }
  std::map<std::string, const catalog::TensorRecord*> tensors;
  std::map<std::string, const Value*> values;
  for (const auto& t : saved_tensors) tensors[t.name] = &t;
  for (const auto& v : saved_values) values[v.name] = &v.value;
  for (const auto& [name, _] : tensors)
    if (!state.contains(name)) result.unexpected_keys.push_back(name);
  for (const auto& [name, _] : values)
    if (!state.contains(name)) result.unexpected_keys.push_back(name);
  std::sort(result.unexpected_keys.begin(), result.unexpected_keys.end());

  const auto where = [&](const std::string& name) {
    return "checkpoint '" + checkpoint + "', tensor '" + name + "'";
  };
  std::vector<ReadJob> jobs;
  std::vector<std::pair<TensorEntry*, bool>> loaded;  // entry, was cast
  std::deque<TensorView> targets;  // where bytes land: the entry's view, or a cast staging view
  for (auto& [name, entry] : state.entries()) {
    const bool is_tensor = tensors.count(name) != 0, is_value = values.count(name) != 0;
    if (!is_tensor && !is_value) {
      result.missing_keys.push_back(name);
      continue;
    }
    if (Value* v = std::get_if<Value>(&entry)) {
      if (!is_value) throw InvalidArgument("entry '" + name + "': saved as a tensor, requested as a value");
      const Value& saved = *values[name];
      if (saved.index() != v->index())
        throw InvalidArgument("value '" + name + "': saved " + value_kind(saved) + ", target " + value_kind(*v));
      *v = saved;
      continue;
    }
    if (!is_tensor) throw InvalidArgument("entry '" + name + "': saved as a value, requested as a tensor");
    const catalog::TensorRecord& rec = *tensors[name];
    TensorEntry& te = std::get<TensorEntry>(entry);
    if (te.view.global_shape != rec.shape)
      throw InvalidArgument(where(name) + ": saved shape " + to_string(rec.shape) + ", target " +
                            to_string(te.view.global_shape));
    const TensorView* target_view = &te.view;
    if (te.view.dtype == rec.dtype && te.load_target) {
      targets.push_back(te.load_target());
      target_view = &targets.back();
    } else if (te.view.dtype != rec.dtype) {
      if (!options.allow_cast)
        throw InvalidArgument(where(name) + ": saved dtype " + rec.dtype + ", target " + te.view.dtype +
                              " (set LoadOptions::allow_cast to convert)");
      if (!te.cast_target)
        throw InvalidArgument(where(name) + ": saved dtype " + rec.dtype + ", target " + te.view.dtype +
                              ": converting needs the LibTorch layer (tessera/torch.h)");
      targets.push_back(te.cast_target(rec.dtype));
      target_view = &targets.back();
    }
    if (static_cast<int64_t>(target_view->elem_size) != rec.elem_size)
      throw InvalidArgument(where(name) + ": saved element size " + std::to_string(rec.elem_size) + ", target " +
                            std::to_string(target_view->elem_size));
    check_view(name, *target_view);
    const Box target = local_box(*target_view);
    for (const auto& p : rec.pieces)
      if (auto region = intersect(p.box, target)) jobs.push_back(ReadJob{&name, target_view, p.box, *region, p.chunk});
    loaded.emplace_back(&te, te.view.dtype != rec.dtype);
  }
  if (!result.missing_keys.empty() && options.strict)
    throw NotFoundError("checkpoint '" + checkpoint + "' has no entries " + join_first(result.missing_keys) +
                        " (load with strict=false to skip them)");

  std::unordered_map<ChunkId, catalog::ChunkLocation, ChunkIdHash> locations;
  {
    std::lock_guard lock(impl.mu);
    for (const ReadJob& j : jobs) {
      if (locations.count(j.chunk)) continue;
      auto loc = impl.catalog.locate(j.chunk);
      if (!loc) throw CorruptionError(where(*j.tensor) + ": chunk " + j.chunk.hex() + " is missing from the catalog");
      locations.emplace(j.chunk, std::move(*loc));
    }
  }

  PackCache packs(impl);
  std::atomic<uint64_t> bytes_read{0};
  io::ThreadPool pool(options.threads);
  pool.parallel_for(jobs.size(), [&](size_t i) {
    const ReadJob& j = jobs[i];
    const catalog::ChunkLocation& loc = locations.at(j.chunk);
    const pack::ChunkEntry& e = loc.entry;
    const size_t elem = j.target->elem_size;
    auto damaged = [&](const std::string& why) {
      return CorruptionError(where(*j.tensor) + ": chunk " + j.chunk.hex() + " in pack '" + loc.pack + "': " + why);
    };
    if (e.raw_len != static_cast<uint64_t>(j.chunk_box.volume()) * elem)
      throw damaged("catalog says " + std::to_string(e.raw_len) + " bytes, the box needs " +
                    std::to_string(j.chunk_box.volume() * static_cast<int64_t>(elem)));
    std::unique_ptr<std::byte[]> raw(new std::byte[e.raw_len]);  // uninitialized: every byte used is read
    try {
      const pack::PackReader& reader = packs.get(loc.pack);
      if (e.codec == Codec::kRaw) {
        if (e.stored_len != e.raw_len) throw damaged("raw chunk with mismatched stored and raw lengths");
        auto ranges = plan::region_byte_ranges(j.chunk_box, j.region, elem);
        if (options.verify) ranges = plan::widen_to_blocks(ranges, pack::kBlockBytes, e.raw_len);
        for (const auto& r : ranges) {
          reader.read(e.offset + r.begin, r.size(), raw.get() + r.begin);
          bytes_read += r.size();
        }
        if (options.verify) {
          if (e.block_sums.size() != pack::block_count(e.raw_len)) throw damaged("block checksums missing");
          for (const auto& r : ranges)
            for (uint64_t b = r.begin / pack::kBlockBytes; b * pack::kBlockBytes < r.end; ++b) {
              uint64_t start = b * pack::kBlockBytes, len = std::min(pack::kBlockBytes, e.raw_len - start);
              if (checksum64(raw.get() + start, len) != e.block_sums[b])
                throw damaged("checksum mismatch in bytes " + std::to_string(start) + ".." +
                              std::to_string(start + len));
            }
        }
      } else {
        ByteBuffer stored(e.stored_len);
        reader.read(e.offset, e.stored_len, stored.data());
        bytes_read += e.stored_len;
        if (options.verify && checksum64(stored.data(), stored.size()) != e.stored_sum)
          throw damaged("checksum mismatch in the stored bytes");
        try {
          decode_chunk(e.codec, stored.data(), stored.size(), e.elem_size, raw.get(), e.raw_len);
        } catch (const std::runtime_error& ex) {
          throw damaged(std::string("cannot decode: ") + ex.what());
        }
        if (options.verify && chunk_id_of(raw.get(), e.raw_len) != e.id)
          throw damaged("decoded bytes do not match the chunk id");
      }
    } catch (const pack::PackError& ex) {
      throw damaged(ex.what());
    }
    copy_region(j.region, StridedView::dense(j.chunk_box, raw.get()), strided(*j.target), elem);
  });
  for (auto [te, cast] : loaded)
    if (te->finish_load) te->finish_load(cast);
  result.bytes_read = bytes_read;
  result.chunks_read = jobs.size();
  return result;
}

}  // namespace tessera
