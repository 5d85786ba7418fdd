// The operating system's files: the Env every store uses unless told otherwise.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/env.h"
#include "io/io_error.h"

namespace tessera {
namespace {

using io::fail;
using io::IoError;

// Appends go through the page cache; every kWriteBehindBytes appended, the
// kernel is asked to start writing them out (Linux sync_file_range, without
// waiting), so the disk works while the caller computes the next bytes and
// sync() finds little left to write. Without it, a host with much memory
// keeps a whole save dirty in its page cache until the final fsyncs, and
// hashing and compressing never overlap the disk's work.
constexpr uint64_t kWriteBehindBytes = 8ull << 20;

class PosixWritableFile final : public WritableFile {
 public:
  explicit PosixWritableFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create", path_, errno);
  }
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void append(const void* data, size_t n) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot write", path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    if (size_ - written_out_ >= kWriteBehindBytes) write_behind();
  }

  void sync() override {
    if (::fdatasync(fd_) != 0) fail("cannot fsync", path_, errno);
  }

  void close() override {
    if (fd_ >= 0 && ::close(fd_) != 0) {
      fd_ = -1;
      fail("cannot close", path_, errno);
    }
    fd_ = -1;
  }

  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  void write_behind() {
#ifdef __linux__
    // Only a hint: a file system that refuses it loses the overlap, not data
    // (sync() reports any write error), so its result is not checked.
    (void)::sync_file_range(fd_, static_cast<off_t>(written_out_), static_cast<off_t>(size_ - written_out_),
                            SYNC_FILE_RANGE_WRITE);
#endif
    written_out_ = size_;
  }

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t written_out_ = 0;  // bytes [0, written_out_) have been handed to writeback
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  explicit PosixRandomAccessFile(std::string path) : path_(std::move(path)) {
    // O_NONBLOCK: a FIFO or a device in a file's place must not block the
    // open; anything but a regular file is refused.
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) fail("cannot open", path_, errno);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      fail("cannot stat", path_, err);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw IoError("'" + path_ + "' is not a regular file");
    }
  }
  ~PosixRandomAccessFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  uint64_t size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail("cannot stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  void prefetch(uint64_t offset, size_t n) const override {
    ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(n), POSIX_FADV_WILLNEED);  // a hint: errors ignored
  }

  void read_at(uint64_t offset, size_t n, void* dst) const override {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail("cannot read", path_, errno);
      }
      if (r == 0)
        throw IoError("file '" + path_ + "' is truncated: wanted " + std::to_string(n) + " more bytes at offset " +
                      std::to_string(offset));
      p += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
  }

  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Used only where SQLite is routed through an Env that wraps the posix one
// (a FaultInjectionEnv over real files); the posix Env itself lets SQLite
// open the catalog with its own VFS.
class PosixRandomRWFile final : public RandomRWFile {
 public:
  PosixRandomRWFile(std::string path, bool create) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd_ < 0) fail("cannot open", path_, errno);
  }
  ~PosixRandomRWFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  size_t read_at(uint64_t offset, size_t n, void* dst) override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, static_cast<char*>(dst) + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail("cannot read", path_, errno);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }

  void write_at(uint64_t offset, const void* data, size_t n) override {
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::pwrite(fd_, static_cast<const char*>(data) + done, n - done, static_cast<off_t>(offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot write", path_, errno);
      }
      done += static_cast<size_t>(w);
    }
  }

  void truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail("cannot truncate", path_, errno);
  }
  void sync() override {
    if (::fdatasync(fd_) != 0) fail("cannot fsync", path_, errno);
  }
  uint64_t size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail("cannot stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

FileType type_of(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

class PosixEnv final : public Env {
 public:
  std::unique_ptr<WritableFile> create_file(const std::string& path) override {
    return std::make_unique<PosixWritableFile>(path);
  }
  std::unique_ptr<RandomAccessFile> open_file(const std::string& path) override {
    return std::make_unique<PosixRandomAccessFile>(path);
  }
  std::unique_ptr<RandomRWFile> open_rw_file(const std::string& path, bool create) override {
    return std::make_unique<PosixRandomRWFile>(path, create);
  }

  void rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) fail("cannot rename to", to, errno);
  }

  void sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open directory", dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) fail("cannot fsync directory", dir, err);
  }

  void make_dirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail("cannot create directory", dir, ec.value());
  }

  void remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove", path, errno);
  }

  bool exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  std::optional<FileStatus> status(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      fail("cannot stat", path, errno);
    }
    FileStatus s;
    s.type = type_of(st.st_mode);
    s.size = static_cast<uint64_t>(st.st_size);
    s.modified = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    return s;
  }

  std::vector<DirEntry> list_dir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) fail("cannot list", dir, errno);
    std::vector<DirEntry> out;
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      FileType type = FileType::kOther;
      switch (e->d_type) {
        case DT_REG: type = FileType::kRegular; break;
        case DT_DIR: type = FileType::kDirectory; break;
        case DT_LNK: type = FileType::kSymlink; break;
        case DT_UNKNOWN: {
          struct stat st;
          if (::lstat((dir + "/" + name).c_str(), &st) != 0) continue;  // removed meanwhile
          type = type_of(st.st_mode);
          break;
        }
        default: break;
      }
      out.push_back(DirEntry{name, type});
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) fail("cannot list", dir, err);
    return out;
  }

  bool on_memory_filesystem(const std::string& dir) override {
    struct statfs fs;
    if (::statfs(dir.c_str(), &fs) != 0) return false;
    constexpr decltype(fs.f_type) kTmpfs = 0x01021994, kRamfs = static_cast<decltype(fs.f_type)>(0x858458f6);
    return fs.f_type == kTmpfs || fs.f_type == kRamfs;
  }

  bool lets_sqlite_use_os_files() const override { return true; }
};

}  // namespace

std::shared_ptr<Env> posix_env() {
  static const std::shared_ptr<Env> env = std::make_shared<PosixEnv>();
  return env;
}

namespace io {

void fail(const std::string& what, const std::string& path, int err) {
  throw IoError(what + " '" + path + "': " + std::strerror(err), err);
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void rename_durable(Env& env, const std::string& from, const std::string& to) {
  env.rename(from, to);
  env.sync_dir(parent_dir(to));
}

}  // namespace io
}  // namespace tessera
