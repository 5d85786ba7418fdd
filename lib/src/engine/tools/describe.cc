// describe(): one checkpoint's entries as the catalog lists them (kind,
// dtype, shape, pieces, sizes, whether shared with the previous checkpoint).
#include "engine/tools/describe.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <unordered_map>

#include "engine/value_size.h"
#include "tessera/error.h"

namespace tessera {
namespace {

std::string printable(const Value& v) {
  switch (v.index()) {
    case 0: return std::to_string(std::get<Bytes>(v).data.size()) + " bytes";
    case 1: return std::to_string(std::get<int64_t>(v));
    case 2: {  // the shortest text that reads back as the same double (0.0003, not 0.00029999999999999997)
      char buf[64];
      const auto end = std::to_chars(buf, buf + sizeof buf, std::get<double>(v), std::chars_format::general).ptr;
      return std::string(buf, end);
    }
    default: return std::get<std::string>(v);
  }
}

}  // namespace

std::vector<EntryInfo> describe(Store::Impl& impl, const std::string& checkpoint) {
  std::lock_guard lock(impl.mu);
  auto ckpt = require_checkpoint(impl, checkpoint);
  std::vector<EntryInfo> out;
  std::unordered_map<std::string, int64_t> previous;  // tensor -> layout id
  if (auto prev = impl.catalog.previous_checkpoint(ckpt.id))
    for (const auto& t : impl.catalog.tensors(*prev, false)) previous.emplace(t.name, t.layout_id);
  for (const auto& t : impl.catalog.tensors(ckpt.id)) {
    EntryInfo e{t.name, "tensor", t.dtype, t.shape, static_cast<int64_t>(t.pieces.size()), t.raw_bytes,
                t.stored_bytes, "", false, {}};
    if (auto it = previous.find(t.name); it != previous.end()) e.shared_with_previous = it->second == t.layout_id;
    for (const auto& p : t.pieces)
      if (!p.box.offsets.empty()) e.row_starts.push_back(p.box.offsets[0]);
    std::sort(e.row_starts.begin(), e.row_starts.end());
    e.row_starts.erase(std::unique(e.row_starts.begin(), e.row_starts.end()), e.row_starts.end());
    out.push_back(std::move(e));
  }
  for (const auto& v : impl.catalog.values(ckpt.id))
    out.push_back(EntryInfo{v.name, value_kind(v.value), "", {}, 0, value_size(v.value), 0, printable(v.value), false, {}});
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace tessera
