// Reads a pack: its footer (validated against magic, version and checksum)
// and byte ranges of its chunks. Errors name the pack file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/file.h"
#include "pack/pack_format.h"

namespace tessera::pack {

// A pack that is missing, truncated, foreign or damaged in its footer.
class PackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class PackReader {
 public:
  explicit PackReader(std::string path);  // throws PackError if it cannot be opened

  const std::string& path() const { return path_; }
  uint64_t size() const { return file_->size(); }

  // Parses and checks the trailer and footer.
  std::vector<ChunkEntry> read_footer() const;

  // Reads `n` bytes at `offset`; PackError if the pack is shorter.
  void read(uint64_t offset, size_t n, std::byte* dst) const;

 private:
  std::string path_;
  std::unique_ptr<io::ReadFile> file_;
};

}  // namespace tessera::pack
