#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace tessera::io {
namespace {

std::mutex hook_mu;
WriteFaultHook hook;

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw IoError(what + " '" + path + "': " + std::strerror(err));
}

int injected_fault(const std::string& path, size_t n) {
  std::lock_guard lock(hook_mu);
  return hook ? hook(path, n) : 0;
}

}  // namespace

void set_write_fault_hook(WriteFaultHook h) {
  std::lock_guard lock(hook_mu);
  hook = std::move(h);
}

WriteFile::WriteFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create", path_, errno);
}

WriteFile::~WriteFile() {
  if (fd_ >= 0) ::close(fd_);
}

void WriteFile::append(const void* data, size_t n) {
  if (int err = injected_fault(path_, n)) fail("cannot write", path_, err);
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

void WriteFile::write_behind() {
#ifdef __linux__
  // Only a hint: a file system that refuses it loses the overlap, not data
  // (sync() reports any write error), so its result is not checked.
  (void)::sync_file_range(fd_, static_cast<off_t>(written_out_), static_cast<off_t>(size_ - written_out_),
                          SYNC_FILE_RANGE_WRITE);
#endif
  written_out_ = size_;
}

void WriteFile::sync() {
  if (::fdatasync(fd_) != 0) fail("cannot fsync", path_, errno);
}

void WriteFile::close() {
  if (fd_ >= 0 && ::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot close", path_, errno);
  }
  fd_ = -1;
}

ReadFile::ReadFile(std::string path) : path_(std::move(path)) {
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
  size_ = static_cast<uint64_t>(st.st_size);
}

ReadFile::~ReadFile() {
  if (fd_ >= 0) ::close(fd_);
}


void ReadFile::read_at(uint64_t offset, size_t n, void* dst) const {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("cannot read", path_, errno);
    }
    if (r == 0)
      throw IoError("file '" + path_ + "' is truncated: wanted " + std::to_string(n) +
                    " more bytes at offset " + std::to_string(offset));
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("cannot fsync directory", dir, err);
}

void rename_durable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) fail("cannot rename to", to, errno);
  fsync_dir(std::filesystem::path(to).parent_path().string());
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create directory", dir, ec.value());
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove", path, errno);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    WriteFile f(tmp);
    f.append(contents.data(), contents.size());
    f.sync();
    f.close();
  }
  rename_durable(tmp, path);
}

bool on_memory_filesystem(const std::string& dir) {
  struct statfs fs;
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  constexpr decltype(fs.f_type) kTmpfs = 0x01021994, kRamfs = static_cast<decltype(fs.f_type)>(0x858458f6);
  return fs.f_type == kTmpfs || fs.f_type == kRamfs;
}

}  // namespace tessera::io
