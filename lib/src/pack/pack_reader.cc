#include "pack/pack_reader.h"

#include <cstring>

#include "io/io_error.h"

namespace tessera::pack {

PackReader::PackReader(Env& env, std::string path) : path_(std::move(path)) {
  try {
    file_ = env.open_file(path_);
    size_ = file_->size();
  } catch (const io::IoError& e) {
    throw PackError(e.what());
  }
}

void PackReader::read(uint64_t offset, size_t n, std::byte* dst) const {
  try {
    file_->read_at(offset, n, dst);
  } catch (const io::IoError& e) {
    throw PackError(e.what());
  }
}

std::vector<ChunkEntry> PackReader::read_footer() const {
  const uint64_t size = size_;
  auto bad = [&](const std::string& why) { return PackError("pack '" + path_ + "': " + why); };
  if (size < kTrailerBytes) throw bad("too short to be a pack (" + std::to_string(size) + " bytes)");
  char trailer[kTrailerBytes];
  read(size - kTrailerBytes, kTrailerBytes, reinterpret_cast<std::byte*>(trailer));
  if (std::memcmp(trailer + 36, kMagic, 4) != 0) throw bad("not a tessera pack (bad magic)");
  uint64_t footer_offset, footer_len, chunk_count, footer_sum;
  uint32_t version;
  std::memcpy(&footer_offset, trailer, 8);
  std::memcpy(&footer_len, trailer + 8, 8);
  std::memcpy(&chunk_count, trailer + 16, 8);
  std::memcpy(&footer_sum, trailer + 24, 8);
  std::memcpy(&version, trailer + 32, 4);
  if (version == 0) throw bad("pack format version 0 is not valid");
  if (version > kVersion)
    throw bad("pack format version " + std::to_string(version) + " is newer than this tessera reads (" +
              std::to_string(kVersion) + ")");
  if (footer_offset + footer_len + kTrailerBytes != size) throw bad("footer position does not match the file size");
  std::string footer(footer_len, '\0');
  read(footer_offset, footer_len, reinterpret_cast<std::byte*>(footer.data()));
  if (checksum64(footer.data(), footer.size()) != footer_sum) throw bad("footer checksum mismatch");
  try {
    auto entries = decode_footer(footer, chunk_count);
    for (const auto& e : entries)
      if (e.offset + e.stored_len > footer_offset) throw bad("chunk " + e.id.hex() + " extends past the data area");
      else if (e.codec == Codec::kRaw && e.stored_len != e.raw_len) throw bad("raw chunk " + e.id.hex() + " has mismatched lengths");
    return entries;
  } catch (const PackError&) {
    throw;
  } catch (const std::exception& e) {
    throw bad(e.what());
  }
}

}  // namespace tessera::pack
