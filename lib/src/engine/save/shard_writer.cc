// write_shards(): the first half of a save (see shard_writer.h). Each entry
// is described, plan::plan_save cuts it into pieces and picks the replica
// that writes each; a PartWriter hashes the pieces, skips the chunks already
// stored and writes the rest into packs.
#include "engine/save/shard_writer.h"

#include <atomic>
#include <deque>
#include <exception>
#include <mutex>
#include <memory>
#include <optional>
#include <unordered_set>

#include "catalog/maintenance.h"
#include "engine/save/retention.h"
#include "engine/view_check.h"
#include "io/env.h"
#include "io/progress_meter.h"
#include "io/thread_pool.h"
#include "pack/pack_writer.h"
#include "plan/read_plan.h"
#include "plan/save_plan.h"
#include "tessera/error.h"
#include "tessera/tensor_source.h"

namespace tessera::engine {
namespace {

// One entry's bytes as the workers see them: the entry's own host view, or
// the view its source's host_view_for_save() returns, staged on first use.
class EntryBytes {
 public:
  EntryBytes(const std::string& name, const TensorEntry& entry) : name_(name), entry_(entry) {}

  // The host view to read; stages the entry on the first call (other
  // callers wait for it). Throws what staging throws, on every call.
  const TensorView& bytes() {
    if (!entry_.staged()) return entry_.view;
    std::call_once(once_, [&] {
      try {
        staged_ = entry_.source->host_view_for_save();
        check_view(name_, staged_);
        if (staged_.sizes != entry_.view.sizes || staged_.global_shape != entry_.view.global_shape ||
            staged_.offsets != entry_.view.offsets || staged_.elem_size != entry_.view.elem_size)
          throw InvalidArgument("tensor '" + name_ + "': the staged view does not match the entry's geometry");
      } catch (...) {
        error_ = std::current_exception();
      }
    });
    if (error_) std::rethrow_exception(error_);
    return staged_;
  }
  void add_piece() { ++pending_; }
  // One of this entry's pieces is done; the last one tells the source.
  void piece_done() {
    if (--pending_ == 0 && entry_.source) entry_.source->saved();
  }

 private:
  const std::string& name_;
  const TensorEntry& entry_;
  std::once_flag once_;
  TensorView staged_;
  std::exception_ptr error_;
  std::atomic<size_t> pending_{0};
};

// Packs being written by one save. Each worker thread appends to a pack of
// its own (taken from an idle list), so writes and fsyncs of different packs
// proceed in parallel; a pack is finished when it reaches `pack_bytes`.
class PackSink {
 public:
  PackSink(Store::Impl& store, uint64_t pack_bytes) : store_(store), pack_bytes_(pack_bytes) {}

  void add(pack::ChunkEntry entry, const std::byte* stored) {
    std::unique_ptr<pack::PackWriter> w = acquire();
    w->add(std::move(entry), stored);  // on a throw, w's destructor removes its temp file
    if (w->bytes() >= pack_bytes_) {
      pack::PackInfo info = w->finish();
      std::lock_guard lock(mu_);
      done_.push_back(std::move(info));
      return;
    }
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(w));
  }

  std::vector<pack::PackInfo> finish() {
    std::lock_guard lock(mu_);
    for (auto& w : idle_)
      if (w->chunk_count() > 0) done_.push_back(w->finish());
    idle_.clear();
    return std::move(done_);
  }
  // After a failure: drop the packs in progress (their temp files are
  // removed) and return the packs already finished.
  std::vector<pack::PackInfo> abandon() {
    std::lock_guard lock(mu_);
    idle_.clear();
    return std::move(done_);
  }

 private:
  std::unique_ptr<pack::PackWriter> acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        auto w = std::move(idle_.back());
        idle_.pop_back();
        return w;
      }
    }
    return std::make_unique<pack::PackWriter>(store_.env, store_.tmp_dir(), store_.packs_dir());
  }
  Store::Impl& store_;
  uint64_t pack_bytes_;
  std::mutex mu_;
  std::vector<std::unique_ptr<pack::PackWriter>> idle_;
  std::vector<pack::PackInfo> done_;
};

// The bytes of `piece` in row-major order: a pointer into the tensor when the
// piece is contiguous there, else a copy in `scratch`.
const std::byte* piece_bytes(const TensorView& v, const Box& piece, pack::ByteBuffer& scratch) {
  const Box local = local_box(v);
  if (v.strides == contiguous_strides(v.sizes)) {
    auto ranges = plan::region_byte_ranges(local, piece, v.elem_size);
    if (ranges.size() == 1) return v.data + ranges[0].begin;
  }
  const size_t n = static_cast<size_t>(piece.volume()) * v.elem_size;
  if (scratch.size() < n) scratch = pack::ByteBuffer(n);
  copy_region(piece, strided(v), StridedView::dense(piece, scratch.data()), v.elem_size);
  return scratch.data();
}

// The chunk id of `piece`, hashed where the bytes lie when the tensor is
// row-major: one run for a contiguous piece, one run per row for a column
// block (XXH3 streamed over the runs equals XXH3 of the gathered bytes), so
// an unchanged chunk is never copied. Nullopt for other layouts.
std::optional<pack::ChunkId> id_in_place(const TensorView& v, const Box& piece) {
  if (v.strides != contiguous_strides(v.sizes)) return std::nullopt;
  auto ranges = plan::region_byte_ranges(local_box(v), piece, v.elem_size);
  if (ranges.size() == 1) return pack::chunk_id_of(v.data + ranges[0].begin, ranges[0].size());
  pack::StreamHash128 h;
  for (const auto& r : ranges) h.update(v.data + r.begin, r.size());
  return h.digest();
}

// Records each value in `m.values` and each tensor in `m.tensors` (pieces
// still empty), with its bytes in `entry_bytes`; returns the tensors'
// geometry for the plan, in m.tensors' order.
std::vector<plan::SaveTensor> describe_entries(const StateDict& state, RankManifest& m,
                                               std::deque<EntryBytes>& entry_bytes) {
  std::vector<plan::SaveTensor> layouts;
  for (const auto& [name, entry] : state.entries()) {
    if (const Value* v = std::get_if<Value>(&entry)) {
      m.values.push_back(catalog::ValueRecord{name, *v});
      continue;
    }
    const TensorEntry& te = std::get<TensorEntry>(entry);
    entry_bytes.emplace_back(name, te);
    const TensorView& view = te.view;
    check_view(name, view, /*require_data=*/!te.staged());
    catalog::TensorRecord rec;
    rec.name = name;
    rec.dtype = view.dtype;
    rec.elem_size = static_cast<int64_t>(view.elem_size);
    rec.shape = view.global_shape;
    m.tensors.push_back(std::move(rec));
    layouts.push_back(plan::SaveTensor{view.global_shape, local_box(view), view.elem_size, view.replica_index,
                                       view.replica_count, te.staged()});
  }
  return layouts;
}

// The compression this save uses. On a memory filesystem writing is faster
// than any codec (GPU bench: /dev/shm saves 1.5x and loads 1.5x faster raw),
// so auto stores raw there.
Compression compression_for(Store::Impl& store, const SaveOptions& options) {
  if (options.compression == Compression::kAuto && store.env.on_memory_filesystem(store.packs_dir()))
    return Compression::kNone;
  return options.compression;
}

// One chunk as it goes into a pack: its entry and its stored bytes (the raw
// bytes themselves when the codec is raw, else the encoded ones).
struct StoredChunk {
  pack::ChunkEntry entry;
  pack::Encoded encoded;
  const std::byte* raw = nullptr;
  const std::byte* stored() const { return entry.codec == pack::Codec::kRaw ? raw : encoded.bytes.data(); }
};

StoredChunk encode_piece(const std::byte* raw, uint64_t n, size_t elem_size, const pack::ChunkId& id,
                         Compression compression) {
  StoredChunk c;
  c.raw = raw;
  pack::ChunkEntry& e = c.entry;
  e.id = id;
  e.raw_len = n;
  e.elem_size = static_cast<uint8_t>(std::min<size_t>(elem_size, 255));
  c.encoded = pack::encode_chunk(raw, n, elem_size, compression);
  e.codec = c.encoded.codec;
  if (e.codec == pack::Codec::kRaw) {
    e.block_sums = pack::block_sums_of(raw, n);
    e.stored_len = n;
    e.stored_sum = pack::checksum64(e.block_sums.data(), e.block_sums.size() * 8);
  } else {
    e.stored_len = c.encoded.bytes.size();
    e.stored_sum = pack::checksum64(c.encoded.bytes.data(), e.stored_len);
  }
  return c;
}

// One rank's part being written: the plan's pieces get their chunk ids, the
// chunks no one has stored go into packs, and the counts add up.
class PartWriter {
 public:
  PartWriter(Store::Impl& store, const SaveOptions& options, Compression compression, const plan::SavePlan& plan,
             std::deque<EntryBytes>& entry_bytes, io::ProgressMeter& meter)
      : store_(store), options_(options), plan_(plan), tasks_(plan.pieces), entry_bytes_(entry_bytes),
        meter_(meter), pieces_(tasks_.size()), sink_(store, options.pack_bytes), compression_(compression) {}

  // Writes every group of the plan on options.threads threads. On failure
  // removes the packs it finished and rethrows.
  void write_all() {
    // Pieces go in the plan's groups: a group's new chunk ids are looked up in
    // the catalog in one read transaction, as each lookup on its own takes and
    // drops the catalog's file lock (system calls costing more than the lookup).
    const std::vector<size_t>& group_start = plan_.groups;
    io::ThreadPool pool(options_.threads);
    try {
      pool.parallel_for(group_start.size() - 1, [&](size_t g) { write_group(group_start[g], group_start[g + 1]); });
      packs_ = sink_.finish();
      meter_.finish();
    } catch (...) {
      discard_packs(store_, sink_.abandon());
      throw;
    }
  }

  // Moves the pieces, packs and counts into `m` (after write_all).
  void fill(RankManifest& m) {
    m.packs = std::move(packs_);
    for (size_t i = 0; i < tasks_.size(); ++i) m.tensors[tasks_[i].tensor].pieces.push_back(std::move(pieces_[i]));
    m.stats.logical_bytes = logical_;
    m.stats.written_bytes = written_bytes_;
    m.stats.chunks = tasks_.size();
    m.stats.chunks_written = written_;
    m.stats.packs = m.packs.size();
  }

 private:
  // Tasks [begin, end): their ids, then the chunks neither this save nor
  // (with dedup) the catalog has, written.
  void write_group(size_t begin, size_t end) {
    struct Done {  // the group's pieces no longer need their entries' bytes, however it ends
      PartWriter& w;
      size_t begin, end;
      ~Done() {
        for (size_t i = begin; i < end; ++i) {
          w.entry_bytes_[w.tasks_[i].tensor].piece_done();
          w.meter_.add(w.tasks_[i].bytes);
        }
      }
    } done{*this, begin, end};
    thread_local pack::ByteBuffer scratch;  // reused across pieces: no zero-filling per chunk
    std::vector<size_t> to_write = claim_new_ids(begin, end, scratch);
    if (options_.dedup && !to_write.empty()) {
      std::lock_guard lock(store_.mu);
      auto one_lock = store_.catalog.read_scope();
      std::erase_if(to_write, [&](size_t i) { return store_.catalog.has_chunk(pieces_[i].chunk); });
    }
    for (size_t i : to_write) write_chunk(i, scratch);
  }

  // Hashes tasks [begin, end) into pieces_; returns those whose chunk this
  // save has not claimed yet (now claimed).
  std::vector<size_t> claim_new_ids(size_t begin, size_t end, pack::ByteBuffer& scratch) {
    std::vector<size_t> to_write;
    for (size_t i = begin; i < end; ++i) {
      const plan::SavePiece& t = tasks_[i];
      const TensorView& v = entry_bytes_[t.tensor].bytes();
      const std::optional<pack::ChunkId> in_place = id_in_place(v, t.box);
      const pack::ChunkId id = in_place ? *in_place : pack::chunk_id_of(piece_bytes(v, t.box, scratch), t.bytes);
      pieces_[i] = catalog::Piece{t.box, id};
      logical_ += t.bytes;
      std::lock_guard lock(claim_mu_);
      if (claimed_.insert(id).second) to_write.push_back(i);
    }
    return to_write;
  }

  void write_chunk(size_t i, pack::ByteBuffer& scratch) {
    const plan::SavePiece& t = tasks_[i];
    const TensorView& v = entry_bytes_[t.tensor].bytes();
    StoredChunk c = encode_piece(piece_bytes(v, t.box, scratch), t.bytes, v.elem_size, pieces_[i].chunk, compression_);
    written_bytes_ += c.entry.stored_len;
    ++written_;
    const std::byte* stored = c.stored();
    sink_.add(std::move(c.entry), stored);
  }

  Store::Impl& store_;
  const SaveOptions& options_;
  const plan::SavePlan& plan_;
  const std::vector<plan::SavePiece>& tasks_;
  std::deque<EntryBytes>& entry_bytes_;
  io::ProgressMeter& meter_;
  std::vector<catalog::Piece> pieces_;  // per task
  PackSink sink_;
  const Compression compression_;
  std::mutex claim_mu_;
  std::unordered_set<pack::ChunkId, pack::ChunkIdHash> claimed_;  // written (or being written) by this save
  std::atomic<uint64_t> written_{0}, written_bytes_{0}, logical_{0};
  std::vector<pack::PackInfo> packs_;
};

}  // namespace

RankManifest write_shards(const StateDict& state, Store::Impl& store, const SaveOptions& options) {
  if (options.chunk_bytes <= 0) throw InvalidArgument("save: chunk_bytes must be positive");
  check_keep_last(options.keep_last);  // refused before anything is written, on every rank
  RankManifest m;
  std::deque<EntryBytes> entry_bytes;  // one per tensor in m.tensors (stable addresses)
  const std::vector<plan::SaveTensor> layouts = describe_entries(state, m, entry_bytes);
  const plan::SavePlan plan = plan::plan_save(layouts, options.chunk_bytes);
  for (const plan::SavePiece& t : plan.pieces) entry_bytes[t.tensor].add_piece();
  const Compression compression = compression_for(store, options);
  io::ProgressMeter meter(options.progress, "save", plan.bytes);
  PartWriter writer(store, options, compression, plan, entry_bytes, meter);
  writer.write_all();
  writer.fill(m);
  return m;
}

void discard_packs(Store::Impl& store, const std::vector<pack::PackInfo>& packs) {
  for (const auto& p : packs) {
    try {
      std::lock_guard lock(store.mu);
      if (!catalog::pack_known(store.catalog, p.name)) store.env.remove_file(store.pack_path(p.name));
    } catch (...) {
    }
  }
}

}  // namespace tessera::engine
