// Looking into a store without loading: what a checkpoint holds, and whether
// its stored bytes are intact. The CLI is built on these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/state_dict.h"
#include "tessera/progress.h"
#include "tessera/store.h"

namespace tessera {

struct EntryInfo {
  std::string name;
  std::string kind;        // "tensor", or a value kind: "int", "float", "string", "bytes"
  std::string dtype;       // tensors only
  Shape shape;             // tensors only: the global shape
  int64_t chunks = 0;      // tensors only: chunk references
  int64_t logical_bytes = 0;  // tensors: raw bytes; values: size of the value
  int64_t stored_bytes = 0;   // tensors: stored bytes of the distinct chunks
  std::string value;       // values only: printable form (bytes as a length)
  // Tensors only: the checkpoint committed just before this one (still in
  // the store) has a tensor of this name with the same boxes and the same
  // chunk ids, so this checkpoint stored nothing new for it.
  bool shared_with_previous = false;
  // Tensors of one or more dimensions: the distinct dimension-0 offsets at
  // which stored pieces start, ascending. Readers that split a box by rows
  // split there, so that no chunk is read by two of them.
  Shape row_starts;
};

// Entries of a checkpoint, ordered by name. Throws NotFoundError.
std::vector<EntryInfo> describe(const Store& store, const std::string& checkpoint);

struct DamagedChunk {
  std::string chunk;                // id, hex
  std::string pack;                 // pack file name
  std::string problem;              // what is wrong
  std::vector<std::string> users;   // "checkpoint: tensor" for every user
};

// Damage in the catalog itself: SQLite's integrity check, or a row that
// fails its checksum (schema/CATALOG.md, "Row checksums").
struct CatalogProblem {
  std::string checkpoint;  // whose rows are damaged; "" for the catalog file as a whole
  std::string problem;     // what is wrong, naming the tensor or value
};

struct VerifyReport {
  uint64_t chunks_checked = 0;
  uint64_t bytes_checked = 0;  // stored bytes re-read
  std::vector<DamagedChunk> damaged;
  std::vector<CatalogProblem> catalog;
  bool ok() const { return damaged.empty() && catalog.empty(); }
};

struct VerifyOptions {
  // Chunk reader threads (0 = one per core, the default; at most 1024, more
  // throws InvalidArgument).
  size_t threads = 0;
  // Called as stored bytes are re-read (tessera/progress.h); total: the
  // stored bytes of the chunks checked.
  ProgressFn progress;
};

// Checks the catalog (PRAGMA integrity_check, and every row the named
// checkpoints' loads would read against its checksum), then re-reads and
// re-hashes every chunk they reference (all checkpoints when `checkpoints`
// is empty). Throws NotFoundError for an unknown name; damage is reported,
// not thrown (a checkpoint whose rows are damaged has its chunks unchecked).
VerifyReport verify(const Store& store, const std::vector<std::string>& checkpoints = {},
                    const VerifyOptions& options = {});

}  // namespace tessera
