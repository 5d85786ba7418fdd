#include "io/fault_injection_env.h"

#include <cerrno>
#include <set>

#include "io/io_error.h"

namespace tessera::io {
namespace {

using Op = FaultInjectionEnv::Op;

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionEnv& env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
  void append(const void* data, size_t n) override {
    env_.before(Op::kAppend, path());
    base_->append(data, n);
  }
  void sync() override {
    env_.before(Op::kSync, path());
    base_->sync();
    env_.synced(path());
  }
  void close() override {
    env_.before(Op::kClose, path());
    base_->close();
  }
  uint64_t size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<WritableFile> base_;
};

class FaultRandomAccessFile final : public RandomAccessFile {
 public:
  FaultRandomAccessFile(FaultInjectionEnv& env, std::unique_ptr<RandomAccessFile> base)
      : env_(env), base_(std::move(base)) {}
  uint64_t size() const override {
    env_.before(Op::kSize, path());
    return base_->size();
  }
  void read_at(uint64_t offset, size_t n, void* dst) const override {
    env_.before(Op::kRead, path());
    base_->read_at(offset, n, dst);
  }
  void prefetch(uint64_t offset, size_t n) const override { base_->prefetch(offset, n); }  // a hint: no fault to inject
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<RandomAccessFile> base_;
};

class FaultRandomRWFile final : public RandomRWFile {
 public:
  FaultRandomRWFile(FaultInjectionEnv& env, std::unique_ptr<RandomRWFile> base) : env_(env), base_(std::move(base)) {}
  size_t read_at(uint64_t offset, size_t n, void* dst) override {
    env_.before(Op::kRead, path());
    return base_->read_at(offset, n, dst);
  }
  void write_at(uint64_t offset, const void* data, size_t n) override {
    env_.before(Op::kWrite, path());
    base_->write_at(offset, data, n);
  }
  void truncate(uint64_t size) override {
    env_.before(Op::kTruncate, path());
    base_->truncate(size);
  }
  void sync() override {
    env_.before(Op::kSync, path());
    base_->sync();
    env_.synced(path());
  }
  uint64_t size() override {
    env_.before(Op::kSize, path());
    return base_->size();
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<RandomRWFile> base_;
};

}  // namespace

FaultInjectionEnv::FaultInjectionEnv(std::shared_ptr<Env> base) : base_(std::move(base)) {}

void FaultInjectionEnv::set_rule(FaultRule rule) {
  std::lock_guard lock(mu_);
  rule_ = std::move(rule);
}

void FaultInjectionEnv::lose_power_at(uint64_t call) {
  set_rule([call](const Call& c) { return c.index >= call ? EIO : 0; });
}

uint64_t FaultInjectionEnv::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

bool FaultInjectionEnv::changes_disk(Op op) {
  switch (op) {
    case Op::kOpen: case Op::kRead: case Op::kSize: case Op::kExists: case Op::kStatus: case Op::kListDir:
      return false;
    case Op::kOpenRW:  // may create the file
    default:
      return true;
  }
}

const char* FaultInjectionEnv::name_of(Op op) {
  switch (op) {
    case Op::kCreate: return "create";
    case Op::kOpen: return "open";
    case Op::kOpenRW: return "open";
    case Op::kAppend: return "write";
    case Op::kWrite: return "write";
    case Op::kRead: return "read";
    case Op::kTruncate: return "truncate";
    case Op::kSync: return "fsync";
    case Op::kClose: return "close";
    case Op::kSize: return "stat";
    case Op::kRename: return "rename";
    case Op::kSyncDir: return "fsync directory";
    case Op::kMakeDirs: return "create directory";
    case Op::kRemove: return "remove";
    case Op::kExists: return "stat";
    case Op::kStatus: return "stat";
    case Op::kListDir: return "list";
  }
  return "access";
}

void FaultInjectionEnv::before(Op op, const std::string& path) {
  FaultRule rule;
  uint64_t index;
  {
    std::lock_guard lock(mu_);
    index = calls_++;
    rule = rule_;
  }
  if (!rule) return;
  if (const int err = rule(Call{index, op, path})) io::fail(std::string("cannot ") + name_of(op), path, err);
}

std::string FaultInjectionEnv::read_all(const std::string& path) {
  auto f = base_->open_file(path);
  std::string bytes(f->size(), '\0');
  f->read_at(0, bytes.size(), bytes.data());
  return bytes;
}

void FaultInjectionEnv::track(const std::string& path) {
  if (live_.count(path) || durable_.count(path)) return;
  const auto st = base_->status(path);
  if (st && st->type == FileType::kRegular) {
    const Inode inode = next_inode_++;
    durable_bytes_[inode] = read_all(path);
    live_[path] = inode;
    durable_[path] = inode;
  } else {
    durable_[path] = std::nullopt;
  }
}

void FaultInjectionEnv::synced(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = live_.find(path);
  if (it != live_.end()) durable_bytes_[it->second] = read_all(path);
}

std::unique_ptr<WritableFile> FaultInjectionEnv::create_file(const std::string& path) {
  before(Op::kCreate, path);
  std::lock_guard lock(mu_);
  track(path);
  auto file = base_->create_file(path);
  const Inode inode = next_inode_++;
  durable_bytes_[inode] = "";
  live_[path] = inode;
  return std::make_unique<FaultWritableFile>(*this, std::move(file));
}

std::unique_ptr<RandomAccessFile> FaultInjectionEnv::open_file(const std::string& path) {
  before(Op::kOpen, path);
  return std::make_unique<FaultRandomAccessFile>(*this, base_->open_file(path));
}

std::unique_ptr<RandomRWFile> FaultInjectionEnv::open_rw_file(const std::string& path, bool create) {
  before(Op::kOpenRW, path);
  std::lock_guard lock(mu_);
  track(path);
  auto file = base_->open_rw_file(path, create);
  if (!live_.count(path)) {  // created just now
    const Inode inode = next_inode_++;
    durable_bytes_[inode] = "";
    live_[path] = inode;
  }
  return std::make_unique<FaultRandomRWFile>(*this, std::move(file));
}

void FaultInjectionEnv::rename(const std::string& from, const std::string& to) {
  before(Op::kRename, to);
  std::lock_guard lock(mu_);
  track(from);
  track(to);
  base_->rename(from, to);
  auto it = live_.find(from);
  if (it == live_.end()) return;  // base_ threw above unless `from` was there
  live_[to] = it->second;
  live_.erase(from);
}

void FaultInjectionEnv::sync_dir(const std::string& dir) {
  before(Op::kSyncDir, dir);
  base_->sync_dir(dir);
  std::lock_guard lock(mu_);
  std::set<std::string> paths;
  for (const auto& [p, _] : live_) paths.insert(p);
  for (const auto& [p, _] : durable_) paths.insert(p);
  for (const std::string& p : paths) {
    if (parent_dir(p) != dir) continue;
    auto it = live_.find(p);
    durable_[p] = it == live_.end() ? std::nullopt : std::optional<Inode>(it->second);
  }
}

void FaultInjectionEnv::make_dirs(const std::string& dir) {
  before(Op::kMakeDirs, dir);
  base_->make_dirs(dir);
}

void FaultInjectionEnv::remove_file(const std::string& path) {
  before(Op::kRemove, path);
  std::lock_guard lock(mu_);
  track(path);
  base_->remove_file(path);
  live_.erase(path);
}

bool FaultInjectionEnv::exists(const std::string& path) {
  before(Op::kExists, path);
  return base_->exists(path);
}

std::optional<FileStatus> FaultInjectionEnv::status(const std::string& path) {
  before(Op::kStatus, path);
  return base_->status(path);
}

std::vector<DirEntry> FaultInjectionEnv::list_dir(const std::string& dir) {
  before(Op::kListDir, dir);
  return base_->list_dir(dir);
}

bool FaultInjectionEnv::on_memory_filesystem(const std::string& dir) { return base_->on_memory_filesystem(dir); }

void FaultInjectionEnv::drop_unsynced() {
  std::lock_guard lock(mu_);
  std::set<std::string> paths;
  for (const auto& [p, _] : live_) paths.insert(p);
  for (const auto& [p, _] : durable_) paths.insert(p);
  for (const std::string& p : paths) base_->remove_file(p);
  for (const auto& [p, inode] : durable_) {
    if (!inode) continue;
    auto f = base_->create_file(p);
    const std::string& bytes = durable_bytes_.at(*inode);
    f->append(bytes.data(), bytes.size());
    f->sync();
    f->close();
  }
  live_.clear();
  durable_.clear();
  durable_bytes_.clear();
}

}  // namespace tessera::io
