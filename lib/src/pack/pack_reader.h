// Reads a pack: its footer (validated against magic, version and checksum)
// and byte ranges of its chunks. Errors name the pack file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/env.h"
#include "pack/pack_format.h"
#include "tessera/error.h"

namespace tessera::pack {

// A pack that is missing, truncated, foreign or damaged in its footer.
// A tessera::Error, so that callers (and the Python package, which maps
// tessera::Error to tessera.Error) catch it with the library's other errors.
class PackError : public Error {
 public:
  using Error::Error;
};

class PackReader {
 public:
  // Throws PackError if it cannot be opened. `env` must outlive the reader.
  PackReader(Env& env, std::string path);

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }  // when opened: a pack never changes once named

  // Parses and checks the trailer and footer.
  std::vector<ChunkEntry> read_footer() const;

  // Reads `n` bytes at `offset`; PackError if the pack is shorter.
  void read(uint64_t offset, size_t n, std::byte* dst) const;
  // Hints that those bytes will be read soon (RandomAccessFile::prefetch).
  void prefetch(uint64_t offset, size_t n) const { file_->prefetch(offset, n); }

 private:
  std::string path_;
  std::unique_ptr<RandomAccessFile> file_;
  uint64_t size_ = 0;
};

}  // namespace tessera::pack
