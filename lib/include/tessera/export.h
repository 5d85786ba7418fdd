// Exporting a checkpoint for the Hugging Face ecosystem: its tensors as
// consolidated safetensors files, whatever shards and ranks saved them.
//
// Output, in the layout `transformers` reads (`save_pretrained`):
//   OUT/model.safetensors                     when everything fits one file, or
//   OUT/model-00001-of-0000N.safetensors ...  when the tensors' bytes exceed
//   OUT/model.safetensors.index.json          max_shard_bytes, with the index
//       {"metadata": {"total_size": BYTES}, "weight_map": {"name": "model-00001-of-0000N.safetensors", ...}}
//
// Each file follows the safetensors format: an 8-byte little-endian u64 N,
// then N bytes of UTF-8 JSON header padded with spaces to a multiple of 8,
//   {"__metadata__": {"format": "pt"},
//    "name": {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [BEGIN, END]}, ...}
// then the data: each tensor's elements row-major, little-endian, in header
// order without gaps; data_offsets count from the start of the data. Within
// a file tensors are laid out by element size (largest first), then name, so
// every tensor starts at an offset that is a multiple of its element size.
// Shards are filled greedily in name order: a shard is closed when the next
// tensor would take it past max_shard_bytes; a tensor larger than that gets
// a shard of its own. total_size is the sum of the tensors' bytes.
//
// Streaming: the headers come from the catalog alone (names, dtypes, global
// shapes). Each output file is then created at its final size and filled
// chunk by chunk: every stored chunk the tensor's pieces reference is read
// once, checked against its checksums and chunk id (as load() checks), and
// its rows are written at their offsets in the row-major output. Memory
// stays at one chunk per thread (chunk_bytes of the save, 4 MiB by default),
// whatever the tensors' sizes, so a checkpoint saved as shards of many ranks
// becomes one consolidated tensor per name without ever being whole in memory.
//
// Durability: files are written under hidden temporary names in OUT
// (".model....tmp-PID"), fdatasync'ed, and renamed into place only when all
// of them are complete (the index last), then OUT is fsync'ed. A failure
// leaves no output file (temporary files are removed); a killed export
// leaves only temporary files, which an export with `overwrite` removes.
//
// dtypes (LibTorch names -> safetensors): float64 F64, float32 F32, float16
// F16, bfloat16 BF16, int64 I64, int32 I32, int16 I16, int8 I8, uint64 U64,
// uint32 U32, uint16 U16, uint8 U8, bool BOOL, float8_e4m3fn F8_E4M3,
// float8_e5m2 F8_E5M2, float8_e4m3fnuz F8_E4M3FNUZ, float8_e5m2fnuz
// F8_E5M2FNUZ, float8_e8m0fnu F8_E8M0, complex64 C64. Others (complex32,
// complex128, quantized, sub-byte and bits types) have no safetensors dtype.
//
// Values (ints, strings, ... saved beside the tensors) have no place in a
// safetensors file and are not exported; ExportResult counts them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tessera/progress.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"

namespace tessera {

struct ExportOptions {
  // Export only tensors whose names start with this (default "": all).
  std::string prefix;
  // Name tensors without `prefix` in the output ("model.embed.weight" with
  // prefix "model." becomes "embed.weight"). A tensor named exactly
  // `prefix` is then an InvalidArgument. Default false.
  bool strip_prefix = false;
  // Shard when the tensors' bytes exceed this (default 5 GiB). REQUIRES: > 0.
  uint64_t max_shard_bytes = 5ull << 30;
  // A tensor whose dtype safetensors lacks is skipped and listed in
  // ExportResult::skipped, instead of failing the export (default false).
  bool skip_unsupported = false;
  // Replace an earlier export in OUT (default false: an existing
  // model.safetensors, model.safetensors.index.json or
  // model-NNNNN-of-NNNNN.safetensors is an AlreadyExistsError). With true,
  // those of the earlier export that the new one does not overwrite, and
  // temporary files of killed exports, are removed after the new files are
  // in place.
  bool overwrite = false;
  // Extra "__metadata__" entries (string to string); "format" is always "pt".
  std::map<std::string, std::string> metadata;
  size_t threads = 0;  // chunk readers (0 = one per core; at most 1024, more throws InvalidArgument)
  // Called as tensor bytes are written (tessera/progress.h); total: the tensors' bytes.
  ProgressFn progress;
};

struct ExportedFile {
  std::string name;           // file name in OUT
  uint64_t file_bytes = 0;    // size of the file (header included)
  uint64_t tensor_bytes = 0;  // of which tensor data
  std::vector<std::string> tensors;  // output names, in layout order
};

struct ExportResult {
  std::vector<ExportedFile> files;  // data files, in shard order
  std::string index_file;           // "model.safetensors.index.json", or "" when unsharded
  uint64_t tensors = 0;             // tensors exported
  uint64_t total_size = 0;          // their bytes (the index's total_size)
  std::vector<std::string> skipped; // "name (dtype)": unsupported, skip_unsupported set
  uint64_t values_skipped = 0;      // non-tensor entries of the selection, not exported
  uint64_t chunks_read = 0;         // chunk reads (each chunk a piece references, once per piece)
  uint64_t bytes_read = 0;          // stored bytes read from packs
  std::vector<std::string> removed; // files of an earlier export removed (overwrite)
};

// The safetensors dtype of a LibTorch dtype name ("bfloat16" -> "BF16"), or
// nullopt when safetensors has none.
std::optional<std::string> safetensors_dtype(const std::string& dtype);

// Writes the tensors of `checkpoint` (those starting with options.prefix) to
// `out_dir` (created if missing) as described at the top of this file.
// Throws NotFoundError for an unknown checkpoint or when no tensor starts
// with the prefix; InvalidArgument naming the tensor and its dtype for an
// unsupported dtype (unless skip_unsupported), or for a name the header
// cannot hold (not UTF-8, "__metadata__"); AlreadyExistsError naming the
// file for an earlier export in out_dir (unless overwrite); CorruptionError
// naming checkpoint, tensor, chunk and pack for a chunk that fails its
// checks; io::IoError (a std::runtime_error) naming the path on I/O failure.
// A store opened read-only is enough.
ExportResult export_safetensors(const Store& store, const std::string& checkpoint, const std::string& out_dir,
                                const ExportOptions& options = {});

}  // namespace tessera
