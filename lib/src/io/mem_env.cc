// An Env whose files and directories live in memory (io/env.h).
#include <cerrno>
#include <map>
#include <mutex>
#include <set>

#include "io/env.h"
#include "io/io_error.h"

namespace tessera {
namespace {

using io::fail;
using Clock = std::chrono::system_clock;

struct MemFile {
  std::mutex mu;
  std::string data;
  Clock::time_point modified = Clock::now();
};

// "/a//b/./c/" -> "/a/b/c"; relative paths are taken from "/".
std::string normalize(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    const std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") out += "/" + part;
    i = j + 1;
  }
  return out.empty() ? "/" : out;
}

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(std::string path, std::shared_ptr<MemFile> file) : path_(std::move(path)), file_(std::move(file)) {}
  void append(const void* data, size_t n) override {
    if (closed_) fail("cannot write", path_, EBADF);
    std::lock_guard lock(file_->mu);
    file_->data.append(static_cast<const char*>(data), n);
    file_->modified = Clock::now();
    size_ += n;
  }
  void sync() override {
    if (closed_) fail("cannot fsync", path_, EBADF);
  }
  void close() override { closed_ = true; }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::shared_ptr<MemFile> file_;
  uint64_t size_ = 0;
  bool closed_ = false;
};

class MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(std::string path, std::shared_ptr<MemFile> file) : path_(std::move(path)), file_(std::move(file)) {}
  uint64_t size() const override {
    std::lock_guard lock(file_->mu);
    return file_->data.size();
  }
  void read_at(uint64_t offset, size_t n, void* dst) const override {
    std::lock_guard lock(file_->mu);
    if (offset + n > file_->data.size()) {
      const uint64_t have = offset < file_->data.size() ? file_->data.size() - offset : 0;
      throw io::IoError("file '" + path_ + "' is truncated: wanted " + std::to_string(n - have) +
                        " more bytes at offset " + std::to_string(offset + have));
    }
    file_->data.copy(static_cast<char*>(dst), n, offset);
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::shared_ptr<MemFile> file_;
};

class MemRandomRWFile final : public RandomRWFile {
 public:
  MemRandomRWFile(std::string path, std::shared_ptr<MemFile> file) : path_(std::move(path)), file_(std::move(file)) {}
  size_t read_at(uint64_t offset, size_t n, void* dst) override {
    std::lock_guard lock(file_->mu);
    if (offset >= file_->data.size()) return 0;
    return file_->data.copy(static_cast<char*>(dst), n, offset);
  }
  void write_at(uint64_t offset, const void* data, size_t n) override {
    std::lock_guard lock(file_->mu);
    if (file_->data.size() < offset + n) file_->data.resize(offset + n);
    file_->data.replace(offset, n, static_cast<const char*>(data), n);
    file_->modified = Clock::now();
  }
  void truncate(uint64_t size) override {
    std::lock_guard lock(file_->mu);
    file_->data.resize(size);
    file_->modified = Clock::now();
  }
  void sync() override {}
  uint64_t size() override {
    std::lock_guard lock(file_->mu);
    return file_->data.size();
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  std::shared_ptr<MemFile> file_;
};

class MemEnv final : public Env {
 public:
  std::unique_ptr<WritableFile> create_file(const std::string& path) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    require_parent(p, "cannot create", path);
    if (files_.count(p) || dirs_.count(p)) fail("cannot create", path, EEXIST);
    auto f = std::make_shared<MemFile>();
    files_[p] = f;
    return std::make_unique<MemWritableFile>(path, f);
  }

  std::unique_ptr<RandomAccessFile> open_file(const std::string& path) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    if (dirs_.count(p)) throw io::IoError("'" + path + "' is not a regular file");
    auto it = files_.find(p);
    if (it == files_.end()) fail("cannot open", path, ENOENT);
    return std::make_unique<MemRandomAccessFile>(path, it->second);
  }

  std::unique_ptr<RandomRWFile> open_rw_file(const std::string& path, bool create) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    if (dirs_.count(p)) fail("cannot open", path, EISDIR);
    auto it = files_.find(p);
    if (it == files_.end()) {
      if (!create) fail("cannot open", path, ENOENT);
      require_parent(p, "cannot open", path);
      it = files_.emplace(p, std::make_shared<MemFile>()).first;
    }
    return std::make_unique<MemRandomRWFile>(path, it->second);
  }

  void rename(const std::string& from, const std::string& to) override {
    const std::string f = normalize(from), t = normalize(to);
    std::lock_guard lock(mu_);
    auto it = files_.find(f);
    if (it == files_.end()) fail("cannot rename to", to, ENOENT);
    require_parent(t, "cannot rename to", to);
    if (dirs_.count(t)) fail("cannot rename to", to, EISDIR);
    auto file = it->second;
    files_.erase(it);
    files_[t] = std::move(file);
  }

  void sync_dir(const std::string& dir) override {
    std::lock_guard lock(mu_);
    if (!dirs_.count(normalize(dir))) fail("cannot open directory", dir, ENOENT);
  }

  void make_dirs(const std::string& dir) override {
    const std::string d = normalize(dir);
    std::lock_guard lock(mu_);
    for (size_t i = 1; i <= d.size(); ++i) {
      if (i < d.size() && d[i] != '/') continue;
      const std::string prefix = d.substr(0, i);
      if (files_.count(prefix)) fail("cannot create directory", dir, ENOTDIR);
      dirs_.insert(prefix);
    }
  }

  void remove_file(const std::string& path) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    if (dirs_.count(p)) fail("cannot remove", path, EISDIR);
    files_.erase(p);
  }

  bool exists(const std::string& path) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    return files_.count(p) || dirs_.count(p);
  }

  std::optional<FileStatus> status(const std::string& path) override {
    const std::string p = normalize(path);
    std::lock_guard lock(mu_);
    if (dirs_.count(p)) return FileStatus{FileType::kDirectory, 0, Clock::time_point{}};
    auto it = files_.find(p);
    if (it == files_.end()) return std::nullopt;
    std::lock_guard file_lock(it->second->mu);
    return FileStatus{FileType::kRegular, it->second->data.size(), it->second->modified};
  }

  std::vector<DirEntry> list_dir(const std::string& dir) override {
    const std::string d = normalize(dir);
    std::lock_guard lock(mu_);
    if (!dirs_.count(d)) fail("cannot list", dir, files_.count(d) ? ENOTDIR : ENOENT);
    const std::string prefix = d == "/" ? "/" : d + "/";
    std::vector<DirEntry> out;
    auto children = [&](const auto& names, FileType type) {
      for (auto it = names.lower_bound(prefix); it != names.end(); ++it) {
        const std::string& name = key_of(*it);
        if (name.compare(0, prefix.size(), prefix) != 0) break;
        if (name.size() > prefix.size() && name.find('/', prefix.size()) == std::string::npos)
          out.push_back(DirEntry{name.substr(prefix.size()), type});
      }
    };
    children(files_, FileType::kRegular);
    children(dirs_, FileType::kDirectory);
    return out;
  }

  bool on_memory_filesystem(const std::string&) override { return true; }

 private:
  static const std::string& key_of(const std::string& s) { return s; }
  template <class V>
  static const std::string& key_of(const std::pair<const std::string, V>& kv) {
    return kv.first;
  }

  // REQUIRES: mu_ held.
  void require_parent(const std::string& p, const char* what, const std::string& path) {
    const size_t slash = p.find_last_of('/');
    const std::string parent = slash == 0 ? "/" : p.substr(0, slash);
    if (!dirs_.count(parent)) fail(what, path, files_.count(parent) ? ENOTDIR : ENOENT);
  }

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<MemFile>> files_;
  std::set<std::string> dirs_{"/"};
};

}  // namespace

std::shared_ptr<Env> new_mem_env() { return std::make_shared<MemEnv>(); }

}  // namespace tessera
