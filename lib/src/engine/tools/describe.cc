// describe(): one checkpoint's entries as the catalog lists them (kind,
// dtype, shape, pieces, sizes, whether shared with the previous checkpoint).
#include "engine/tools/describe.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <unordered_map>

#include "engine/value_size.h"
#include "tessera/error.h"

namespace tessera::engine {
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

// The distinct dimension-0 offsets where the pieces start, ascending.
std::vector<int64_t> row_starts_of(const std::vector<catalog::Piece>& pieces) {
  std::vector<int64_t> starts;
  for (const auto& p : pieces)
    if (!p.box.offsets.empty()) starts.push_back(p.box.offsets[0]);
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  return starts;
}

EntryInfo tensor_entry(const catalog::TensorRecord& t) {
  return EntryInfo{t.name, "tensor", t.dtype, t.shape, static_cast<int64_t>(t.pieces.size()), t.raw_bytes,
                   t.stored_bytes, "", false, row_starts_of(t.pieces)};
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
    EntryInfo e = tensor_entry(t);
    if (auto it = previous.find(t.name); it != previous.end()) e.shared_with_previous = it->second == t.layout_id;
    out.push_back(std::move(e));
  }
  for (const auto& v : impl.catalog.values(ckpt.id))
    out.push_back(EntryInfo{v.name, value_kind(v.value), "", {}, 0, value_size(v.value), 0, printable(v.value), false, {}});
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) { return a.name < b.name; });
  return out;
}

std::unordered_map<std::string, EntryInfo> describe_boxes(Store::Impl& impl, const std::string& checkpoint,
                                                         const std::unordered_map<std::string, Box>& boxes) {
  std::lock_guard lock(impl.mu);
  const auto ckpt = require_checkpoint(impl, checkpoint);
  const catalog::ReadFilter only_boxes = [&](const std::string& name) -> std::optional<Box> {
    auto it = boxes.find(name);
    if (it == boxes.end()) return std::nullopt;  // none of its pieces
    return it->second;
  };
  std::unordered_map<std::string, EntryInfo> out;
  for (const auto& t : impl.catalog.tensors(ckpt.id, only_boxes))
    if (boxes.count(t.name)) out.emplace(t.name, tensor_entry(t));
  return out;
}

}  // namespace tessera::engine
