// Export planning: which safetensors file each exported tensor goes to, where
// its bytes lie in that file, and every byte of the files that is not tensor
// data (each file's header, the index). Pure: names, dtypes, shapes and the
// size limit in, files out (export_safetensors reads the chunks and writes
// the files; tessera/export.h describes the output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "geometry/box.h"

namespace tessera::plan {

// File names of an export (in the layout `transformers` reads).
inline constexpr const char* kSingleExportFile = "model.safetensors";
inline constexpr const char* kExportIndexFile = "model.safetensors.index.json";
// "model-00002-of-00005.safetensors" for shard 1 (from 0) of 5.
std::string export_shard_name(size_t index, size_t count);
// Whether `name` is a file an export writes: the single file, the index, or
// model-N-of-M.safetensors with N and M of at least 5 digits each.
bool is_export_file_name(const std::string& name);

// One tensor to export, as the plan sees it: never its bytes.
struct ExportTensor {
  std::string name;    // in the output: valid UTF-8, not "__metadata__"
  std::string dtype;   // safetensors dtype ("BF16")
  Shape shape;
  int64_t elem_size = 0;  // > 0
  uint64_t bytes() const { return static_cast<uint64_t>(volume(shape)) * static_cast<uint64_t>(elem_size); }
};

// A tensor placed in a file.
struct PlacedTensor {
  size_t tensor = 0;   // index into the plan's tensors
  uint64_t begin = 0;  // data_offsets: [begin, end), counted from the start of the data
  uint64_t end = 0;
  bool operator==(const PlacedTensor&) const = default;
};

struct ExportFile {
  std::string name;
  // Layout order: element size, largest first, then output name, so each
  // tensor starts at a multiple of its element size; without gaps.
  std::vector<PlacedTensor> tensors;
  // The 8-byte little-endian length and the JSON header, padded with spaces
  // to a multiple of 8. Tensor data starts right after it.
  std::string header;
  uint64_t data_bytes = 0;  // the tensors' bytes
  uint64_t size() const { return header.size() + data_bytes; }
};

struct ExportPlan {
  std::vector<ExportFile> files;  // in shard order
  uint64_t total_size = 0;        // the tensors' bytes
  // The JSON of kExportIndexFile (total_size, and each tensor's file, by
  // name); empty when there is one file, which has no index.
  std::string index;
};

// The files of an export of `tensors`. One file, kSingleExportFile, when their
// bytes add up to at most max_shard_bytes; otherwise shards filled greedily
// in name order: a shard is closed when the next tensor would take it past
// max_shard_bytes, so a tensor larger than that gets a shard of its own.
// `metadata` joins {"format": "pt"} in every header's "__metadata__" (a
// "format" key in it is ignored). REQUIRES: max_shard_bytes > 0; names
// distinct; metadata valid UTF-8.
ExportPlan plan_export(const std::vector<ExportTensor>& tensors, uint64_t max_shard_bytes,
                       const std::map<std::string, std::string>& metadata);

// A JSON string literal: quotes, backslashes and control characters escaped,
// other bytes (valid UTF-8) as they are.
std::string json_string(const std::string& s);

}  // namespace tessera::plan
