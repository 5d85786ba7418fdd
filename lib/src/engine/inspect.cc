#include "tessera/inspect.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "engine/pieces.h"
#include "engine/chunk_reader.h"
#include "engine/store_impl.h"
#include "io/file.h"
#include "io/thread_pool.h"
#include "pack/pack_reader.h"
#include "tessera/error.h"

namespace tessera {
namespace {

std::string printable(const Value& v) {
  switch (v.index()) {
    case 0: return std::to_string(std::get<Bytes>(v).data.size()) + " bytes";
    case 1: return std::to_string(std::get<int64_t>(v));
    case 2: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", std::get<double>(v));
      return buf;
    }
    default: return std::get<std::string>(v);
  }
}

int64_t value_size(const Value& v) {
  switch (v.index()) {
    case 0: return static_cast<int64_t>(std::get<Bytes>(v).data.size());
    case 3: return static_cast<int64_t>(std::get<std::string>(v).size());
    default: return 8;
  }
}

}  // namespace

std::vector<EntryInfo> describe(const Store& store, const std::string& checkpoint) {
  Store::Impl& impl = store.impl();
  std::lock_guard lock(impl.mu);
  auto ckpt = require_checkpoint(impl, checkpoint);
  std::vector<EntryInfo> out;
  std::unordered_map<std::string, int64_t> previous;  // tensor -> layout id
  if (auto prev = impl.catalog.previous_checkpoint(ckpt.id))
    for (const auto& t : impl.catalog.tensors(*prev, false)) previous.emplace(t.name, t.layout_id);
  for (const auto& t : impl.catalog.tensors(ckpt.id)) {
    EntryInfo e{t.name, "tensor", t.dtype, t.shape, static_cast<int64_t>(t.pieces.size()), t.raw_bytes,
                t.stored_bytes, "", false};
    if (auto it = previous.find(t.name); it != previous.end()) e.shared_with_previous = it->second == t.layout_id;
    for (const auto& p : t.pieces)
      if (!p.box.offsets.empty()) e.row_starts.push_back(p.box.offsets[0]);
    std::sort(e.row_starts.begin(), e.row_starts.end());
    e.row_starts.erase(std::unique(e.row_starts.begin(), e.row_starts.end()), e.row_starts.end());
    out.push_back(std::move(e));
  }
  for (const auto& v : impl.catalog.values(ckpt.id))
    out.push_back(EntryInfo{v.name, value_kind(v.value), "", {}, 0, value_size(v.value), 0, printable(v.value), false});
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) { return a.name < b.name; });
  return out;
}

VerifyReport verify(const Store& store, const std::vector<std::string>& names, size_t threads) {
  Store::Impl& impl = store.impl();
  std::vector<catalog::CheckpointInfo> ckpts;
  std::vector<catalog::ChunkLocation> chunks;
  {
    std::lock_guard lock(impl.mu);
    if (names.empty()) ckpts = impl.catalog.list_checkpoints();
    for (const auto& n : names)
      if (std::none_of(ckpts.begin(), ckpts.end(), [&](const auto& c) { return c.name == n; }))
        ckpts.push_back(require_checkpoint(impl, n));
    std::vector<ChunkId> ids;  // each chunk once, however many checkpoints use it
    std::unordered_set<ChunkId, ChunkIdHash> seen;
    for (const auto& c : ckpts)
      for (const ChunkId& id : impl.catalog.chunk_ids(c.id))
        if (seen.insert(id).second) ids.push_back(id);
    auto found = impl.catalog.locate_all(ids);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!found[i]) {  // foreign keys forbid this; report it rather than crash
        found[i] = catalog::ChunkLocation{"(no pack in the catalog)", {}};
        found[i]->entry.id = ids[i];
      }
      chunks.push_back(std::move(*found[i]));
    }
  }
  // Pack by pack, in file order: reading is sequential.
  std::sort(chunks.begin(), chunks.end(), [](const catalog::ChunkLocation& a, const catalog::ChunkLocation& b) {
    return a.pack != b.pack ? a.pack < b.pack : a.entry.offset < b.entry.offset;
  });
  VerifyReport report;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<pack::PackReader>> readers;
  std::map<std::string, std::string> pack_problems;
  for (const auto& c : chunks) {
    if (readers.count(c.pack) || pack_problems.count(c.pack)) continue;
    if (!io::exists(impl.pack_path(c.pack))) {
      pack_problems[c.pack] = "pack file is missing";
      continue;
    }
    try {
      auto r = std::make_unique<pack::PackReader>(impl.pack_path(c.pack));
      auto footer = r->read_footer();  // a pack whose footer is damaged is reported for each chunk
      readers[c.pack] = std::move(r);
    } catch (const std::exception& e) {
      pack_problems[c.pack] = e.what();
    }
  }
  // Runs of nearby chunks of one pack are read with one read of at most
  // kSpanBytes (chunks are sorted by pack and offset): small chunks cost a
  // read each otherwise. A span that cannot be read whole (a truncated
  // pack) is read chunk by chunk, so each problem names its own chunk.
  constexpr uint64_t kSpanBytes = 8 << 20, kMaxGap = 64 << 10;
  struct Span {
    size_t first, last;  // chunks[first, last)
  };
  std::vector<Span> spans;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& e = chunks[i].entry;
    if (!spans.empty()) {
      const auto& start = chunks[spans.back().first];
      const auto& prev = chunks[i - 1].entry;
      if (start.pack == chunks[i].pack && e.offset >= prev.offset + prev.stored_len &&
          e.offset - (prev.offset + prev.stored_len) <= kMaxGap &&
          e.offset + e.stored_len - start.entry.offset <= kSpanBytes) {
        spans.back().last = i + 1;
        continue;
      }
    }
    spans.push_back(Span{i, i + 1});
  }
  std::vector<std::string> problems(chunks.size());
  std::atomic<uint64_t> bytes{0};
  io::ThreadPool pool(threads);
  pool.parallel_for(spans.size(), [&](size_t s) {
    const Span span = spans[s];
    const auto& pack = chunks[span.first].pack;
    if (auto it = pack_problems.find(pack); it != pack_problems.end()) {
      for (size_t i = span.first; i < span.last; ++i) problems[i] = it->second;
      return;
    }
    const pack::PackReader& reader = *readers.at(pack);
    const uint64_t begin = chunks[span.first].entry.offset;
    const auto& tail = chunks[span.last - 1].entry;
    std::vector<std::byte> buffer(tail.offset + tail.stored_len - begin);
    bool whole = true;
    try {
      reader.read(begin, buffer.size(), buffer.data());
    } catch (const std::exception&) {
      whole = false;
    }
    for (size_t i = span.first; i < span.last; ++i) {
      const auto& e = chunks[i].entry;
      if (whole) problems[i] = stored_chunk_problem(e, buffer.data() + (e.offset - begin));
      else try_read_raw_chunk(reader, e, problems[i]);
      bytes += e.stored_len;
    }
  });
  report.chunks_checked = chunks.size();
  report.bytes_checked = bytes;
  std::unordered_map<ChunkId, size_t, ChunkIdHash> damaged;  // -> index in report.damaged
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (problems[i].empty()) continue;
    damaged.emplace(chunks[i].entry.id, report.damaged.size());
    report.damaged.push_back(DamagedChunk{chunks[i].entry.id.hex(), chunks[i].pack, problems[i], {}});
  }
  if (damaged.empty()) return report;
  // Who uses them: each checkpoint's tensors read once, not once per damaged chunk.
  std::lock_guard lock(impl.mu);
  for (const auto& c : ckpts)
    for (const auto& t : impl.catalog.tensors(c.id)) {
      std::unordered_set<size_t> named;  // a tensor is named once per damaged chunk
      for (const auto& p : t.pieces)
        if (auto it = damaged.find(p.chunk); it != damaged.end() && named.insert(it->second).second)
          report.damaged[it->second].users.push_back(c.name + ": " + t.name);
    }
  return report;
}

}  // namespace tessera
