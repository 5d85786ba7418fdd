// Writes one pack: chunks are appended to a temporary file; finish() adds the
// footer and trailer, fdatasyncs, and renames the file into the packs directory
// under its content-addressed name. Until finish() returns, nothing in the
// packs directory has changed; a writer destroyed before that removes its
// temporary file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/env.h"
#include "pack/pack_format.h"

namespace tessera::pack {

class PackWriter {
 public:
  // `tmp_dir` and `packs_dir` must be on the same filesystem of `env`, which
  // must outlive the writer.
  PackWriter(Env& env, const std::string& tmp_dir, std::string packs_dir);
  ~PackWriter();

  // Appends a chunk. `stored` holds the bytes as encoded by `entry.codec`;
  // entry.offset is assigned here.
  void add(ChunkEntry entry, const std::byte* stored);

  uint64_t bytes() const { return file_->size(); }
  size_t chunk_count() const { return entries_.size(); }

  // Writes footer + trailer, fsyncs, renames into packs_dir (fsyncing it).
  // After finish() the pack is durable.
  PackInfo finish();

 private:
  void write(const void* p, size_t n);

  Env& env_;
  std::string packs_dir_;
  std::unique_ptr<WritableFile> file_;
  StreamHash128 name_hash_;
  std::vector<ChunkEntry> entries_;
  bool finished_ = false;
};

}  // namespace tessera::pack
