#include "plan/load_plan.h"

#include <algorithm>
#include <unordered_map>

namespace tessera::plan {

NameMatch match_names(const std::vector<std::string_view>& requested, const std::vector<std::string_view>& tensors,
                      const std::vector<std::string_view>& values) {
  NameMatch m;
  m.entries.reserve(requested.size());
  size_t t = 0, v = 0;
  for (const std::string_view name : requested) {
    for (; t < tensors.size() && tensors[t] < name; ++t) m.unexpected.emplace_back(tensors[t]);
    for (; v < values.size() && values[v] < name; ++v) m.unexpected.emplace_back(values[v]);
    EntryMatch e;
    if (t < tensors.size() && tensors[t] == name) e.tensor = t++;
    if (v < values.size() && values[v] == name) e.value = v++;
    if (!e.tensor && !e.value) m.missing.emplace_back(name);
    m.entries.push_back(e);
  }
  for (; t < tensors.size(); ++t) m.unexpected.emplace_back(tensors[t]);
  for (; v < values.size(); ++v) m.unexpected.emplace_back(values[v]);
  std::sort(m.unexpected.begin(), m.unexpected.end());
  return m;
}

TargetReads target_reads(const std::vector<const Box*>& pieces, const Box& target) {
  TargetReads r;
  for (size_t i = 0; i < pieces.size(); ++i)
    if (auto region = intersect(*pieces[i], target)) {
      r.covered += region->volume();
      r.regions.push_back(ReadRegion{i, std::move(*region)});
    }
  return r;
}

ChunkLookups chunk_lookups(const std::vector<pack::ChunkId>& read_chunks) {
  ChunkLookups l;
  std::unordered_map<pack::ChunkId, size_t, pack::ChunkIdHash> position;  // in l.chunks
  position.reserve(read_chunks.size());
  l.of_read.resize(read_chunks.size());
  for (size_t i = 0; i < read_chunks.size(); ++i) {
    const auto [it, added] = position.try_emplace(read_chunks[i], l.chunks.size());
    if (added) {
      l.chunks.push_back(read_chunks[i]);
      l.first_read.push_back(i);
    }
    l.of_read[i] = it->second;
  }
  return l;
}

std::vector<size_t> waves(const std::vector<uint64_t>& staged_bytes, uint64_t budget) {
  std::vector<size_t> bounds{0};
  for (size_t begin = 0; begin < staged_bytes.size();) {
    size_t end = begin;
    uint64_t staged = 0;
    while (end < staged_bytes.size() && (end == begin || staged + staged_bytes[end] <= budget))
      staged += staged_bytes[end++];
    bounds.push_back(end);
    begin = end;
  }
  return bounds;
}

}  // namespace tessera::plan
