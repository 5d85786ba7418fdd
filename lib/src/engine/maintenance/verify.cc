// verify(): the catalog's own check, each checkpoint's rows against their
// checksums, then every chunk those rows use re-read from its pack and
// checked (extent, stored sum, block sums, decode, id), with who uses the
// damaged ones.
#include "engine/maintenance/verify.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "engine/chunk_reader.h"
#include "io/progress_meter.h"
#include "io/thread_pool.h"
#include "pack/chunk_check.h"
#include "pack/pack_cache.h"
#include "pack/pack_reader.h"
#include "tessera/error.h"

namespace tessera::engine {
namespace {

// SQLite's own check of the file, then each checkpoint's rows as a load
// reads them, against their checksums. The chunks of the checkpoints whose
// rows pass go to `raw_len` with the raw bytes their boxes hold, sorted by
// id, each once; rows_ok[k] says whether ckpts[k]'s rows passed.
using RawLengths = std::vector<std::pair<pack::ChunkId, uint64_t>>;
std::vector<CatalogProblem> check_catalog(catalog::Catalog& cat, const std::vector<catalog::CheckpointInfo>& ckpts,
                                          std::vector<bool>& rows_ok, RawLengths& raw_len) {
  std::vector<CatalogProblem> out;
  try {
    for (const std::string& line : cat.integrity_problems()) out.push_back(CatalogProblem{"", line});
  } catch (const std::exception& e) {
    out.push_back(CatalogProblem{"", e.what()});
  }
  std::unordered_set<int64_t> layouts;
  rows_ok.assign(ckpts.size(), false);
  for (size_t k = 0; k < ckpts.size(); ++k) {
    try {
      if (!cat.find_checkpoint(ckpts[k].name)) throw CorruptionError("its row cannot be found by name");
      cat.values(ckpts[k].id);
      for (const auto& t : cat.tensors(ckpts[k].id))
        if (layouts.insert(t.layout_id).second)
          for (const auto& p : t.pieces) raw_len.emplace_back(p.chunk, static_cast<uint64_t>(p.box.volume() * t.elem_size));
      rows_ok[k] = true;
    } catch (const std::exception& e) {
      out.push_back(CatalogProblem{ckpts[k].name, e.what()});
    }
  }
  // By id, the first of each id kept (stable: as the rows list them).
  std::stable_sort(raw_len.begin(), raw_len.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  raw_len.erase(std::unique(raw_len.begin(), raw_len.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
                raw_len.end());
  return out;
}

// A lane's buffer, kept from span to span: grown when too small, never
// zero-filled (every byte used is written first).
class Scratch {
 public:
  std::byte* get(size_t n) {
    if (n > size_) {
      data_.reset(new std::byte[n]);
      size_ = n;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t size_ = 0;
};

// Nearby chunks of one pack, read with one read.
struct Span {
  size_t first, last;   // chunks[first, last)
  uint64_t begin, end;  // the pack bytes they lie in: [first's offset, last's offset + stored_len)
};

}  // namespace

VerifyReport verify(Store::Impl& impl, const std::vector<std::string>& names, const VerifyOptions& options) {
  VerifyReport report;
  std::vector<catalog::CheckpointInfo> ckpts;
  std::vector<bool> rows_ok;  // per checkpoint: its catalog rows pass
  std::vector<catalog::ChunkLocation> chunks;
  {
    std::lock_guard lock(impl.mu);
    if (names.empty()) ckpts = impl.catalog.list_checkpoints();
    std::vector<CatalogProblem> unreadable;  // named checkpoints whose row is damaged
    for (const auto& n : names)
      if (std::none_of(ckpts.begin(), ckpts.end(), [&](const auto& c) { return c.name == n; })) {
        try {
          ckpts.push_back(require_checkpoint(impl, n));
        } catch (const CorruptionError& e) {
          unreadable.push_back(CatalogProblem{n, e.what()});
        }
      }
    RawLengths raw_len;  // each chunk once, however many checkpoints use it
    report.catalog = check_catalog(impl.catalog, ckpts, rows_ok, raw_len);
    report.catalog.insert(report.catalog.end(), unreadable.begin(), unreadable.end());
    std::vector<pack::ChunkId> ids;
    ids.reserve(raw_len.size());
    for (const auto& [id, len] : raw_len) ids.push_back(id);
    std::vector<std::optional<catalog::ChunkLocation>> found = impl.catalog.locate_sorted(ids);
    chunks.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!found[i] || found[i]->pack.empty()) {  // foreign keys forbid this; report it rather than crash
        found[i] = catalog::ChunkLocation{"(no pack in the catalog)", -1, {}};
        found[i]->entry.id = ids[i];
      } else if (found[i]->entry.raw_len != raw_len[i].second) {  // decoding it would size a buffer by a damaged length
        report.catalog.push_back(CatalogProblem{"", "the row of chunk " + ids[i].hex() + " says " +
                                                        std::to_string(found[i]->entry.raw_len) + " raw bytes, its box holds " +
                                                        std::to_string(raw_len[i].second)});
        continue;
      }
      chunks.push_back(std::move(*found[i]));
    }
  }
  // Pack by pack, in file order: reading is sequential.
  std::sort(chunks.begin(), chunks.end(), [](const catalog::ChunkLocation& a, const catalog::ChunkLocation& b) {
    return a.pack_id != b.pack_id ? a.pack_id < b.pack_id : a.entry.offset < b.entry.offset;
  });
  pack::PackCache packs(impl.env, impl.packs_dir());
  std::map<std::string, std::string> pack_problems;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const std::string& pack = chunks[i].pack;
    if (i > 0 && chunks[i - 1].pack_id == chunks[i].pack_id) continue;  // one pack's chunks are adjacent
    if (!impl.env.exists(impl.pack_path(pack))) {
      pack_problems[pack] = "pack file is missing";
      continue;
    }
    try {
      packs.get(pack).read_footer();  // a pack whose footer is damaged is reported for each chunk
    } catch (const std::exception& e) {
      pack_problems[pack] = e.what();
      packs.close(pack);
    }
  }
  // Runs of nearby chunks of one pack are read with one read of at most
  // kSpanBytes (chunks are sorted by pack and offset): small chunks cost a
  // read each otherwise. A span that cannot be read whole (a truncated
  // pack) is read chunk by chunk, so each problem names its own chunk.
  constexpr uint64_t kSpanBytes = 8 << 20, kMaxGap = 64 << 10;
  std::vector<Span> spans;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& e = chunks[i].entry;
    if (!spans.empty()) {
      Span& open = spans.back();
      const auto& prev = chunks[i - 1].entry;
      if (chunks[open.first].pack_id == chunks[i].pack_id && e.offset >= prev.offset + prev.stored_len &&
          e.offset - (prev.offset + prev.stored_len) <= kMaxGap && e.offset + e.stored_len - open.begin <= kSpanBytes) {
        open.last = i + 1;
        open.end = e.offset + e.stored_len;
        continue;
      }
    }
    spans.push_back(Span{i, i + 1, e.offset, e.offset + e.stored_len});
  }
  std::vector<std::string> problems(chunks.size());
  std::atomic<uint64_t> bytes{0};
  uint64_t total = 0;
  for (const auto& c : chunks) total += c.entry.stored_len;
  io::ProgressMeter meter(options.progress, "verify", total);
  // Each lane takes the next span, hints that the span after it will be
  // read (the disk reads it while this lane checks), reads its span and
  // checks it, into buffers it keeps from span to span.
  io::ThreadPool pool(options.threads);
  std::atomic<size_t> next_span{0};
  const size_t lanes = std::min(spans.size(), pool.workers() + 1);
  pool.parallel_for(lanes, [&](size_t) {
    Scratch buffer, raw;
    for (size_t s; (s = next_span++) < spans.size();) {
      const Span span = spans[s];
      const auto& pack = chunks[span.first].pack;
      if (auto it = pack_problems.find(pack); it != pack_problems.end()) {
        for (size_t i = span.first; i < span.last; ++i) problems[i] = it->second;
        continue;
      }
      const pack::PackReader& reader = packs.get(pack);  // opened above
      // A record that cannot fit the pack (a damaged catalog row) sends the span chunk by chunk.
      bool whole = std::all_of(chunks.begin() + span.first, chunks.begin() + span.last,
                               [&](const auto& c) { return pack::extent_problem(c.entry, reader.size()).empty(); });
      if (s + lanes < spans.size()) {
        const Span& later = spans[s + lanes];
        if (!pack_problems.count(chunks[later.first].pack) && later.end > later.begin)
          packs.get(chunks[later.first].pack).prefetch(later.begin, later.end - later.begin);
      }
      std::byte* stored = nullptr;
      if (whole) {
        try {
          stored = buffer.get(span.end - span.begin);
          reader.read(span.begin, span.end - span.begin, stored);
        } catch (const std::exception&) {
          whole = false;
        }
      }
      for (size_t i = span.first; i < span.last; ++i) {
        const auto& e = chunks[i].entry;
        if (whole) problems[i] = pack::stored_chunk_problem_into(e, stored + (e.offset - span.begin), raw.get(e.raw_len));
        else try_read_raw_chunk(reader, e, problems[i]);
        bytes += e.stored_len;
        meter.add(e.stored_len);
      }
    }
  });
  meter.finish();
  report.chunks_checked = chunks.size();
  report.bytes_checked = bytes;
  std::unordered_map<pack::ChunkId, size_t, pack::ChunkIdHash> damaged;  // -> index in report.damaged
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (problems[i].empty()) continue;
    damaged.emplace(chunks[i].entry.id, report.damaged.size());
    report.damaged.push_back(DamagedChunk{chunks[i].entry.id.hex(), chunks[i].pack, problems[i], {}});
  }
  if (damaged.empty()) return report;
  // Who uses them: each checkpoint's tensors read once, not once per damaged chunk.
  std::lock_guard lock(impl.mu);
  for (size_t k = 0; k < ckpts.size(); ++k)
    for (const auto& t : rows_ok[k] ? impl.catalog.tensors(ckpts[k].id) : std::vector<catalog::TensorRecord>{}) {
      std::unordered_set<size_t> named;  // a tensor is named once per damaged chunk
      for (const auto& p : t.pieces)
        if (auto it = damaged.find(p.chunk); it != damaged.end() && named.insert(it->second).second)
          report.damaged[it->second].users.push_back(ckpts[k].name + ": " + t.name);
    }
  return report;
}

}  // namespace tessera::engine
