#include "plan/export_plan.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <utility>

namespace tessera::plan {
namespace {

constexpr const char* kBase = "model";

// Shards of tensor indexes, filled greedily in the order of `by_name`.
std::vector<std::vector<size_t>> split_into_files(const std::vector<ExportTensor>& tensors,
                                                  const std::vector<size_t>& by_name, uint64_t total,
                                                  uint64_t max_shard_bytes) {
  if (total <= max_shard_bytes) return {by_name};
  std::vector<std::vector<size_t>> files;
  uint64_t in_current = 0;
  for (const size_t i : by_name) {
    const uint64_t bytes = tensors[i].bytes();
    if (files.empty() || (in_current > 0 && in_current + bytes > max_shard_bytes)) {
      files.emplace_back();
      in_current = 0;
    }
    in_current += bytes;
    files.back().push_back(i);
  }
  return files;
}

// Lays out the file's tensors (ExportFile::tensors) and builds its header.
ExportFile lay_out(const std::vector<ExportTensor>& tensors, std::vector<size_t> members, std::string name,
                   const std::map<std::string, std::string>& metadata) {
  std::stable_sort(members.begin(), members.end(), [&](size_t a, size_t b) {
    const ExportTensor &ta = tensors[a], &tb = tensors[b];
    return ta.elem_size != tb.elem_size ? ta.elem_size > tb.elem_size : ta.name < tb.name;
  });
  ExportFile f;
  f.name = std::move(name);
  std::string json = "{\"__metadata__\":{\"format\":\"pt\"";
  for (const auto& [k, v] : metadata)
    if (k != "format") json += "," + json_string(k) + ":" + json_string(v);
  json += "}";
  uint64_t offset = 0;
  for (const size_t i : members) {
    const ExportTensor& t = tensors[i];
    const PlacedTensor& p = f.tensors.emplace_back(PlacedTensor{i, offset, offset + t.bytes()});
    offset = p.end;
    json += "," + json_string(t.name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) json += (d ? "," : "") + std::to_string(t.shape[d]);
    json += "],\"data_offsets\":[" + std::to_string(p.begin) + "," + std::to_string(p.end) + "]}";
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  f.data_bytes = offset;
  f.header.resize(8);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) f.header[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  f.header += json;
  return f;
}

// The index: total_size, then each tensor's file, sorted by tensor name.
std::string index_json(const std::vector<ExportTensor>& tensors, const ExportPlan& plan) {
  std::vector<std::pair<std::string, std::string>> map;
  for (const ExportFile& f : plan.files)
    for (const PlacedTensor& p : f.tensors) map.emplace_back(tensors[p.tensor].name, f.name);
  std::sort(map.begin(), map.end());
  std::string json = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(plan.total_size) +
                     "\n  },\n  \"weight_map\": {";
  for (size_t i = 0; i < map.size(); ++i)
    json += std::string(i ? "," : "") + "\n    " + json_string(map[i].first) + ": " + json_string(map[i].second);
  return json + "\n  }\n}\n";
}

}  // namespace

std::string export_shard_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%05zu-of-%05zu.safetensors", kBase, index + 1, count);
  return buf;
}

bool is_export_file_name(const std::string& name) {
  if (name == kSingleExportFile || name == kExportIndexFile) return true;
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

ExportPlan plan_export(const std::vector<ExportTensor>& tensors, uint64_t max_shard_bytes,
                       const std::map<std::string, std::string>& metadata) {
  ExportPlan plan;
  std::vector<size_t> by_name(tensors.size());
  std::iota(by_name.begin(), by_name.end(), size_t{0});
  std::stable_sort(by_name.begin(), by_name.end(),
                   [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  for (const ExportTensor& t : tensors) plan.total_size += t.bytes();
  std::vector<std::vector<size_t>> files = split_into_files(tensors, by_name, plan.total_size, max_shard_bytes);
  for (size_t i = 0; i < files.size(); ++i) {
    std::string name = files.size() == 1 ? kSingleExportFile : export_shard_name(i, files.size());
    plan.files.push_back(lay_out(tensors, std::move(files[i]), std::move(name), metadata));
  }
  if (plan.files.size() > 1) plan.index = index_json(tensors, plan);
  return plan;
}

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

}  // namespace tessera::plan
