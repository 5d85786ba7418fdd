#include "catalog/env_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "io/io_error.h"

namespace tessera::catalog {
namespace {

thread_local std::string last_error;

// Locks by path, for every EnvVfs of this process (see the header).
struct LockState {
  int shared = 0;
  const void* reserved = nullptr;
  const void* pending = nullptr;
  const void* exclusive = nullptr;
};
std::mutex locks_mu;
std::map<std::string, LockState> locks;

// A temporary file SQLite asked for without a name.
class MemoryFile final : public RandomRWFile {
 public:
  size_t read_at(uint64_t offset, size_t n, void* dst) override {
    if (offset >= data_.size()) return 0;
    return data_.copy(static_cast<char*>(dst), n, offset);
  }
  void write_at(uint64_t offset, const void* data, size_t n) override {
    if (data_.size() < offset + n) data_.resize(offset + n);
    data_.replace(offset, n, static_cast<const char*>(data), n);
  }
  void truncate(uint64_t size) override { data_.resize(size); }
  void sync() override {}
  uint64_t size() override { return data_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::string path_ = "(temporary file)";
  std::string data_;
};

struct File {
  sqlite3_file base;  // first: SQLite hands us a sqlite3_file*
  Env* env;
  RandomRWFile* rw;   // owned; a raw pointer because SQLite allocates File
  std::string* path;  // owned
  bool delete_on_close;
  bool sync_dir_once;  // a new journal: sync its directory at its first sync
  int lock;
};

Env& env_of(sqlite3_vfs* vfs) { return *static_cast<Env*>(vfs->pAppData); }

// Runs `body`, turning an Env error into `code` (or SQLITE_FULL).
template <class Body>
int guarded(int code, Body&& body) {
  try {
    body();
    return SQLITE_OK;
  } catch (const io::IoError& e) {
    last_error = e.what();
    return e.error_number() == ENOSPC ? SQLITE_FULL : code;
  } catch (const std::exception& e) {
    last_error = e.what();
    return code;
  }
}

int x_close(sqlite3_file* f) {
  File* file = reinterpret_cast<File*>(f);
  int rc = SQLITE_OK;
  if (file->delete_on_close && !file->path->empty())
    rc = guarded(SQLITE_IOERR_DELETE, [&] { file->env->remove_file(*file->path); });
  delete file->rw;
  delete file->path;
  file->rw = nullptr;
  file->path = nullptr;
  return rc;
}

int x_read(sqlite3_file* f, void* dst, int n, sqlite3_int64 offset) {
  File* file = reinterpret_cast<File*>(f);
  size_t got = 0;
  const int rc = guarded(SQLITE_IOERR_READ, [&] { got = file->rw->read_at(static_cast<uint64_t>(offset), static_cast<size_t>(n), dst); });
  if (rc != SQLITE_OK) return rc;
  if (got < static_cast<size_t>(n)) {
    std::memset(static_cast<char*>(dst) + got, 0, static_cast<size_t>(n) - got);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int x_write(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  File* file = reinterpret_cast<File*>(f);
  return guarded(SQLITE_IOERR_WRITE, [&] { file->rw->write_at(static_cast<uint64_t>(offset), data, static_cast<size_t>(n)); });
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  File* file = reinterpret_cast<File*>(f);
  return guarded(SQLITE_IOERR_TRUNCATE, [&] { file->rw->truncate(static_cast<uint64_t>(size)); });
}

int x_sync(sqlite3_file* f, int) {
  File* file = reinterpret_cast<File*>(f);
  int rc = guarded(SQLITE_IOERR_FSYNC, [&] { file->rw->sync(); });
  if (rc == SQLITE_OK && file->sync_dir_once) {
    rc = guarded(SQLITE_IOERR_DIR_FSYNC, [&] { file->env->sync_dir(io::parent_dir(*file->path)); });
    if (rc == SQLITE_OK) file->sync_dir_once = false;
  }
  return rc;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  File* file = reinterpret_cast<File*>(f);
  return guarded(SQLITE_IOERR_FSTAT, [&] { *size = static_cast<sqlite3_int64>(file->rw->size()); });
}

int x_lock(sqlite3_file* f, int want) {
  File* file = reinterpret_cast<File*>(f);
  if (file->lock >= want) return SQLITE_OK;
  std::lock_guard guard(locks_mu);
  LockState& s = locks[*file->path];
  const void* me = file;
  auto other = [&](const void* holder) { return holder && holder != me; };
  switch (want) {
    case SQLITE_LOCK_SHARED:
      if (other(s.pending) || other(s.exclusive)) return SQLITE_BUSY;
      ++s.shared;
      break;
    case SQLITE_LOCK_RESERVED:
      if (other(s.reserved) || other(s.pending) || other(s.exclusive)) return SQLITE_BUSY;
      s.reserved = me;
      break;
    case SQLITE_LOCK_EXCLUSIVE:
      if (other(s.reserved) || other(s.pending) || other(s.exclusive)) return SQLITE_BUSY;
      s.pending = me;
      if (s.shared > 1) {
        file->lock = SQLITE_LOCK_PENDING;  // new readers wait; ours wait for the old ones to leave
        return SQLITE_BUSY;
      }
      s.exclusive = me;
      break;
    default:
      return SQLITE_IOERR_LOCK;
  }
  file->lock = want;
  return SQLITE_OK;
}

int x_unlock(sqlite3_file* f, int to) {
  File* file = reinterpret_cast<File*>(f);
  if (file->lock <= to) return SQLITE_OK;
  std::lock_guard guard(locks_mu);
  LockState& s = locks[*file->path];
  const void* me = file;
  if (s.reserved == me) s.reserved = nullptr;
  if (s.pending == me) s.pending = nullptr;
  if (s.exclusive == me) s.exclusive = nullptr;
  if (to == SQLITE_LOCK_NONE && file->lock >= SQLITE_LOCK_SHARED) --s.shared;
  file->lock = to;
  return SQLITE_OK;
}

int x_check_reserved_lock(sqlite3_file* f, int* out) {
  File* file = reinterpret_cast<File*>(f);
  std::lock_guard guard(locks_mu);
  const LockState& s = locks[*file->path];
  *out = s.reserved || s.pending || s.exclusive;
  return SQLITE_OK;
}

int x_file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int x_sector_size(sqlite3_file*) { return 4096; }
int x_device_characteristics(sqlite3_file*) { return 0; }

const sqlite3_io_methods kIoMethods = {
    1,  // no xShm*: no WAL
    x_close, x_read, x_write, x_truncate, x_sync, x_file_size, x_lock, x_unlock, x_check_reserved_lock,
    x_file_control, x_sector_size, x_device_characteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

int x_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  File* file = reinterpret_cast<File*>(f);
  file->base.pMethods = nullptr;  // until opened: SQLite then does not call xClose
  Env& env = env_of(vfs);
  const bool create = flags & SQLITE_OPEN_CREATE;
  std::unique_ptr<RandomRWFile> rw;
  std::string path = name ? name : "";
  bool existed = true;
  const int rc = guarded(SQLITE_CANTOPEN, [&] {
    if (path.empty()) {
      rw = std::make_unique<MemoryFile>();
      return;
    }
    if (create) existed = env.exists(path);
    if ((flags & SQLITE_OPEN_EXCLUSIVE) && existed) io::fail("cannot create", path, EEXIST);
    rw = env.open_rw_file(path, create);
  });
  if (rc != SQLITE_OK) return rc == SQLITE_FULL ? SQLITE_CANTOPEN : rc;
  file->env = &env;
  file->rw = rw.release();
  file->path = new std::string(path);
  file->delete_on_close = flags & SQLITE_OPEN_DELETEONCLOSE;
  file->sync_dir_once = !existed && (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL));
  file->lock = SQLITE_LOCK_NONE;
  file->base.pMethods = &kIoMethods;
  if (out_flags) *out_flags = flags;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* vfs, const char* path, int sync_dir) {
  Env& env = env_of(vfs);
  return guarded(SQLITE_IOERR_DELETE, [&] {
    env.remove_file(path);
    if (sync_dir) env.sync_dir(io::parent_dir(path));
  });
}

int x_access(sqlite3_vfs* vfs, const char* path, int flags, int* out) {
  Env& env = env_of(vfs);
  return guarded(SQLITE_IOERR_ACCESS, [&] {
    const auto st = env.status(path);
    // As the unix VFS: an empty file does not count as existing (a journal
    // truncated to nothing is no journal).
    if (flags == SQLITE_ACCESS_EXISTS) *out = st && !(st->type == FileType::kRegular && st->size == 0);
    else *out = st.has_value();
  });
}

int x_full_pathname(sqlite3_vfs*, const char* path, int n, char* out) {
  if (std::strlen(path) + 1 > static_cast<size_t>(n)) return SQLITE_CANTOPEN;
  std::strcpy(out, path);
  return SQLITE_OK;
}

sqlite3_vfs* os_vfs() { return sqlite3_vfs_find(nullptr); }

void* x_dl_open(sqlite3_vfs*, const char* path) { return os_vfs()->xDlOpen(os_vfs(), path); }
void x_dl_error(sqlite3_vfs*, int n, char* out) { os_vfs()->xDlError(os_vfs(), n, out); }
void (*x_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return os_vfs()->xDlSym(os_vfs(), h, sym); }
void x_dl_close(sqlite3_vfs*, void* h) { os_vfs()->xDlClose(os_vfs(), h); }
int x_randomness(sqlite3_vfs*, int n, char* out) { return os_vfs()->xRandomness(os_vfs(), n, out); }
int x_sleep(sqlite3_vfs*, int us) { return os_vfs()->xSleep(os_vfs(), us); }
int x_current_time(sqlite3_vfs*, double* t) { return os_vfs()->xCurrentTime(os_vfs(), t); }
int x_get_last_error(sqlite3_vfs*, int n, char* out) {
  if (n > 0) std::snprintf(out, static_cast<size_t>(n), "%s", last_error.c_str());
  return 0;
}
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* t) { return os_vfs()->xCurrentTimeInt64(os_vfs(), t); }

}  // namespace

EnvVfs::EnvVfs(std::shared_ptr<Env> env) : env_(std::move(env)), vfs_(std::make_unique<sqlite3_vfs>()) {
  static std::atomic<uint64_t> counter{0};
  name_ = "tessera-env-" + std::to_string(counter++);
  sqlite3_vfs& v = *vfs_;
  std::memset(&v, 0, sizeof v);
  v.iVersion = 2;
  v.szOsFile = sizeof(File);
  v.mxPathname = 4096;
  v.zName = name_.c_str();
  v.pAppData = env_.get();
  v.xOpen = x_open;
  v.xDelete = x_delete;
  v.xAccess = x_access;
  v.xFullPathname = x_full_pathname;
  v.xDlOpen = x_dl_open;
  v.xDlError = x_dl_error;
  v.xDlSym = x_dl_sym;
  v.xDlClose = x_dl_close;
  v.xRandomness = x_randomness;
  v.xSleep = x_sleep;
  v.xCurrentTime = x_current_time;
  v.xGetLastError = x_get_last_error;
  v.xCurrentTimeInt64 = x_current_time_int64;
  if (sqlite3_vfs_register(vfs_.get(), 0) != SQLITE_OK)
    throw io::IoError("cannot register the SQLite VFS '" + name_ + "'");
}

EnvVfs::~EnvVfs() { sqlite3_vfs_unregister(vfs_.get()); }

std::string take_vfs_error() {
  std::string e = std::move(last_error);
  last_error.clear();
  return e;
}

}  // namespace tessera::catalog
