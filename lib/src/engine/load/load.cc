#include <algorithm>
#include <deque>
#include <atomic>
#include <string_view>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "engine/load/load.h"
#include "engine/messages.h"
#include "engine/view_check.h"
#include "io/progress_meter.h"
#include "io/thread_pool.h"
#include "pack/chunk_check.h"
#include "pack/pack_cache.h"
#include "pack/pack_reader.h"
#include "plan/load_plan.h"
#include "plan/read_plan.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/tensor_source.h"

namespace tessera::engine {
namespace {

// One saved chunk's contribution to one target tensor.
struct ReadJob {
  const std::string* tensor;
  const TensorView* target;
  const Box* chunk_box;  // the saved piece's (the saved records outlive the jobs)
  Box region;           // *chunk_box ∩ target box
  pack::ChunkId chunk;
};

// A state-dict tensor matched with its saved record.
struct Planned {
  const std::string* name;
  TensorEntry* entry;
  const catalog::TensorRecord* saved;
  bool cast;              // lands in the source's view in the saved dtype, then converted
  uint64_t staged_bytes;  // host staging its source allocates (0 for host views)
};

struct Reader {
  Store::Impl& impl;
  const std::string& checkpoint;
  const LoadOptions& options;
  pack::PackCache packs;
  io::ProgressMeter& meter;
  std::atomic<uint64_t> bytes_read{0};

  // Reads job `j`'s region into its target. When the job needs the whole
  // chunk and the target holds it as one contiguous run, bytes are read (or
  // decoded) straight into the target; otherwise through a chunk buffer.
  template <class Damaged>
  const pack::PackReader& open_pack(const std::string& name, const Damaged& damaged) {
    try {
      return packs.get(name);
    } catch (const pack::PackError& ex) {
      throw damaged(ex.what());
    }
  }

  void read(const ReadJob& j, const catalog::ChunkLocation& loc) {
    const pack::ChunkEntry& e = loc.entry;
    const size_t elem = j.target->elem_size;
    auto damaged = [&](const std::string& why) {
      return CorruptionError(where(checkpoint, *j.tensor) + ": chunk " + j.chunk.hex() + " in pack '" + loc.pack +
                             "': " + why);
    };
    if (e.raw_len != static_cast<uint64_t>(j.chunk_box->volume()) * elem)
      throw damaged("catalog says " + std::to_string(e.raw_len) + " bytes, the box needs " +
                    std::to_string(j.chunk_box->volume() * static_cast<int64_t>(elem)));
    const pack::PackReader& reader = open_pack(loc.pack, damaged);
    if (const std::string why = pack::extent_problem(e, reader.size()); !why.empty()) throw damaged(why);
    std::byte* direct = nullptr;
    if (j.region == *j.chunk_box && j.target->strides == contiguous_strides(j.target->sizes)) {
      auto ranges = plan::region_byte_ranges(local_box(*j.target), j.region, elem);
      if (ranges.size() == 1) direct = j.target->data + ranges[0].begin;
    }
    std::unique_ptr<std::byte[]> buffer;
    std::byte* raw = direct;
    if (!raw) {
      buffer.reset(new std::byte[e.raw_len]);  // uninitialized: every byte used is read
      raw = buffer.get();
    }
    try {
      if (e.codec == pack::Codec::kRaw) {  // its lengths agree: extent_problem checked
        auto ranges = plan::region_byte_ranges(*j.chunk_box, j.region, elem);
        if (options.verify) ranges = plan::widen_to_blocks(ranges, pack::kBlockBytes, e.raw_len);
        for (const auto& r : ranges) {
          reader.read(e.offset + r.begin, r.size(), raw + r.begin);
          bytes_read += r.size();
        }
        if (options.verify)
          for (const auto& r : ranges)
            if (const std::string why = pack::block_sums_problem(e, raw, r.begin, r.end); !why.empty())
              throw damaged(why);
      } else {
        pack::ByteBuffer stored(e.stored_len);
        reader.read(e.offset, e.stored_len, stored.data());
        bytes_read += e.stored_len;
        if (options.verify)
          if (const std::string why = pack::stored_bytes_problem(e, stored.data()); !why.empty()) throw damaged(why);
        if (const std::string why = pack::decode_problem(e, stored.data(), raw); !why.empty()) throw damaged(why);
        if (options.verify)
          if (const std::string why = pack::id_problem(e, raw); !why.empty()) throw damaged("decoded " + why);
      }
    } catch (const pack::PackError& ex) {
      throw damaged(ex.what());
    }
    if (!direct) copy_region(j.region, StridedView::dense(*j.chunk_box, raw), strided(*j.target), elem);
    meter.add(static_cast<uint64_t>(j.region.volume()) * elem);
  }

  // Loads `wave`: asks the sources for host targets, reads every chunk that
  // intersects them in parallel, then tells the sources (e.g. to queue their
  // host-to-device copies, which overlap the next wave's reads).
  void load_wave(const std::vector<Planned>& wave, io::ThreadPool& pool, uint64_t& chunks_read) {
    std::deque<TensorView> targets;  // source-provided views (stable addresses)
    std::vector<ReadJob> jobs;
    for (const Planned& p : wave) {
      TensorEntry& te = *p.entry;
      const TensorView* target = &te.view;
      if (p.cast || te.staged()) target = &targets.emplace_back(te.source->host_target_for_load(p.saved->dtype));
      if (static_cast<int64_t>(target->elem_size) != p.saved->elem_size)
        throw InvalidArgument(where(checkpoint, *p.name) + ": saved element size " +
                              std::to_string(p.saved->elem_size) + ", target " + std::to_string(target->elem_size));
      check_load_target(*p.name, *target);
      const Box box = local_box(*target);
      if (box != local_box(te.view))
        throw InvalidArgument(where(checkpoint, *p.name) + ": the staging target covers " + to_string(box) +
                              ", the entry " + to_string(local_box(te.view)));
      const std::vector<catalog::Piece>& pieces = p.saved->pieces;
      std::vector<const Box*> boxes;
      boxes.reserve(pieces.size());
      for (const catalog::Piece& piece : pieces) boxes.push_back(&piece.box);
      plan::TargetReads reads = plan::target_reads(boxes, box);
      for (plan::ReadRegion& r : reads.regions)
        jobs.push_back(ReadJob{p.name, target, &pieces[r.piece].box, std::move(r.region), pieces[r.piece].chunk});
      // Committed pieces tile the tensor (checked at commit); a damaged
      // catalog must not leave target elements silently unwritten.
      if (reads.covered != box.volume())
        throw CorruptionError(where(checkpoint, *p.name) + ": the catalog's pieces cover " +
                              std::to_string(reads.covered) +
                              " of the " + std::to_string(box.volume()) + " elements of " + to_string(box) +
                              " (damaged catalog? run tessera verify)");
    }
    // Each distinct chunk looked up once, in one catalog pass.
    std::vector<pack::ChunkId> job_chunks;
    job_chunks.reserve(jobs.size());
    for (const ReadJob& j : jobs) job_chunks.push_back(j.chunk);
    const plan::ChunkLookups lookups = plan::chunk_lookups(job_chunks);
    std::vector<std::optional<catalog::ChunkLocation>> found;
    {
      std::lock_guard lock(impl.mu);
      found = impl.catalog.locate_all(lookups.chunks);
    }
    for (size_t i = 0; i < lookups.chunks.size(); ++i)
      if (!found[i])
        throw CorruptionError(where(checkpoint, *jobs[lookups.first_read[i]].tensor) + ": chunk " +
                              lookups.chunks[i].hex() + " is missing from the catalog");
    pool.parallel_for(jobs.size(), [&](size_t i) { read(jobs[i], *found[lookups.of_read[i]]); });
    for (const Planned& p : wave)
      if (p.entry->source) p.entry->source->loaded(p.cast);
    chunks_read += jobs.size();
  }
};

}  // namespace

LoadResult load(StateDict& state, Store::Impl& impl, const std::string& checkpoint, const LoadOptions& options) {
  LoadResult result;
  std::vector<catalog::TensorRecord> saved_tensors;
  std::vector<catalog::ValueRecord> saved_values;
  // Only the pieces each target overlaps are read from the catalog (load_wave
  // checks that a source's target keeps the entry's box). The catalog lists
  // tensors in id order: targets are found by hashing, not by walking the
  // state dict's tree.
  std::unordered_map<std::string_view, const TensorEntry*> targets;
  targets.reserve(state.entries().size());
  for (const auto& [name, entry] : state.entries())
    if (const auto* te = std::get_if<TensorEntry>(&entry)) targets.emplace(name, te);
  {
    std::lock_guard lock(impl.mu);
    auto ckpt = require_checkpoint(impl, checkpoint);
    saved_tensors = impl.catalog.tensors(ckpt.id, [&](const std::string& name) -> std::optional<Box> {
      const auto it = targets.find(name);
      if (it == targets.end()) return std::nullopt;  // none of its pieces
      return local_box(it->second->view);
    });
    saved_values = impl.catalog.values(ckpt.id);
  }
  // Each entry with its saved records, and the saved names the state dict
  // lacks (both lists are sorted by name, as the state dict is).
  std::vector<std::string_view> requested, tensor_names, value_names;
  requested.reserve(state.entries().size());
  for (const auto& [name, entry] : state.entries()) requested.push_back(name);
  tensor_names.reserve(saved_tensors.size());
  for (const catalog::TensorRecord& t : saved_tensors) tensor_names.push_back(t.name);
  value_names.reserve(saved_values.size());
  for (const catalog::ValueRecord& v : saved_values) value_names.push_back(v.name);
  plan::NameMatch match = plan::match_names(requested, tensor_names, value_names);
  result.unexpected_keys = std::move(match.unexpected);

  uint64_t total = 0;  // bytes the targets found in the checkpoint hold
  size_t k = 0;
  for (const auto& [name, entry] : state.entries())
    if (const auto* te = std::get_if<TensorEntry>(&entry); match.entries[k++].tensor && te)
      total += static_cast<uint64_t>(std::max<int64_t>(volume(te->view.sizes), 0)) * te->view.elem_size;
  io::ProgressMeter meter(options.progress, "load", total);
  Reader reader{impl, checkpoint, options, pack::PackCache(impl.env, impl.packs_dir()), meter};
  // Check every entry before reading anything.
  std::vector<Planned> planned;
  size_t j = 0;
  for (auto& [name, entry] : state.entries()) {
    const plan::EntryMatch& saved_as = match.entries[j++];
    const bool is_tensor = saved_as.tensor.has_value(), is_value = saved_as.value.has_value();
    if (!is_tensor && !is_value) continue;  // in match.missing
    if (Value* v = std::get_if<Value>(&entry)) {
      if (!is_value) throw InvalidArgument("entry '" + name + "': saved as a tensor, requested as a value");
      const Value& saved = saved_values[*saved_as.value].value;
      if (saved.index() != v->index())
        throw InvalidArgument("value '" + name + "': saved " + value_kind(saved) + ", target " + value_kind(*v));
      *v = saved;
      continue;
    }
    if (!is_tensor) throw InvalidArgument("entry '" + name + "': saved as a value, requested as a tensor");
    const catalog::TensorRecord& rec = saved_tensors[*saved_as.tensor];
    TensorEntry& te = std::get<TensorEntry>(entry);
    check_load_target(name, te.view, /*require_data=*/!te.staged());  // sources' targets: in load_wave
    if (te.view.global_shape != rec.shape)
      throw InvalidArgument(where(checkpoint, name) + ": saved shape " + to_string(rec.shape) + ", target " +
                            to_string(te.view.global_shape));
    const bool cast = te.view.dtype != rec.dtype;
    if (cast && !options.allow_cast)
      throw InvalidArgument(where(checkpoint, name) + ": saved dtype " + rec.dtype + ", target " + te.view.dtype +
                            " (set LoadOptions::allow_cast to convert)");
    if (cast && !(te.source && te.source->can_cast()))
      throw InvalidArgument(where(checkpoint, name) + ": saved dtype " + rec.dtype + ", target " + te.view.dtype +
                            ": converting needs the LibTorch layer (tessera/torch.h)");
    const bool staged = cast || te.staged();
    const uint64_t bytes = staged ? static_cast<uint64_t>(std::max<int64_t>(volume(te.view.sizes), 0)) *
                                        static_cast<uint64_t>(std::max<int64_t>(rec.elem_size, 0))
                                  : 0;
    planned.push_back(Planned{&name, &te, &rec, cast, bytes});
  }
  result.missing_keys = std::move(match.missing);
  if (!result.missing_keys.empty() && options.strict)
    throw NotFoundError("checkpoint '" + checkpoint + "' has no entries " + quoted_list(result.missing_keys, 5) +
                        " (load with strict=false to skip them)");

  // Waves of at most max_staging_bytes of staged entries (an entry larger
  // than that is a wave of its own); host views cost nothing.
  std::vector<uint64_t> staged_bytes;
  staged_bytes.reserve(planned.size());
  for (const Planned& p : planned) staged_bytes.push_back(p.staged_bytes);
  const std::vector<size_t> waves = plan::waves(staged_bytes, options.max_staging_bytes);
  io::ThreadPool pool(options.threads);
  for (size_t w = 0; w + 1 < waves.size(); ++w)
    reader.load_wave({planned.begin() + static_cast<std::ptrdiff_t>(waves[w]),
                      planned.begin() + static_cast<std::ptrdiff_t>(waves[w + 1])},
                     pool, result.chunks_read);
  meter.finish();
  result.bytes_read = reader.bytes_read;
  return result;
}

}  // namespace tessera::engine
