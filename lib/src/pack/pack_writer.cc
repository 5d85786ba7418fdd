#include "pack/pack_writer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>

namespace tessera::pack {
namespace {

std::string temp_name(const std::string& dir) {
  static std::atomic<uint64_t> counter{0};
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return dir + "/" + std::to_string(::getpid()) + "-" + std::to_string(now) + "-" +
         std::to_string(counter++) + ".partial";
}

}  // namespace

PackWriter::PackWriter(Env& env, const std::string& tmp_dir, std::string packs_dir)
    : env_(env), packs_dir_(std::move(packs_dir)), file_(env.create_file(temp_name(tmp_dir))) {}

PackWriter::~PackWriter() {
  if (!finished_) {
    std::string path = file_->path();
    file_.reset();
    try {
      env_.remove_file(path);
    } catch (...) {
    }
  }
}

void PackWriter::write(const void* p, size_t n) {
  file_->append(p, n);
  name_hash_.update(p, n);
}

void PackWriter::add(ChunkEntry entry, const std::byte* stored) {
  entry.offset = file_->size();
  write(stored, entry.stored_len);
  entries_.push_back(std::move(entry));
}

PackInfo PackWriter::finish() {
  std::string footer = encode_footer(entries_);
  std::string trailer;
  auto put64 = [&](uint64_t v) { trailer.append(reinterpret_cast<const char*>(&v), 8); };
  uint64_t footer_offset = file_->size();
  put64(footer_offset);
  put64(footer.size());
  put64(entries_.size());
  put64(checksum64(footer.data(), footer.size()));
  uint32_t version = kVersion;
  trailer.append(reinterpret_cast<const char*>(&version), 4);
  trailer.append(kMagic, 4);
  write(footer.data(), footer.size());
  write(trailer.data(), trailer.size());
  file_->sync();
  file_->close();
  PackInfo info{name_hash_.digest().hex() + kPackSuffix, file_->size(), entries_};
  io::rename_durable(env_, file_->path(), packs_dir_ + "/" + info.name);
  finished_ = true;
  return info;
}

}  // namespace tessera::pack
